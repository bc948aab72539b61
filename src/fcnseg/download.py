"""Download and unpack PASCAL VOC 2007, VOC 2012 and SBD, safely and resumably.

Why not `keras.utils.get_file`: an interrupted download of these 450 MB
tarballs starts over there, and its extraction is not all-or-nothing. Here:

- `download_file`: one URL to one file, resumed after an interruption (HTTP
  ``Range``), md5-verified before it gets its final name (progress: `keras.utils.Progbar`).
- `safe_extract`: unpack with the standard library's ``filter="data"``, all or nothing.
- `download_voc2007`, `download_voc2012`: both for the official tarballs (or a mirror's,
  `source_url`), skipped when the data is there: every file its splits list
  (`fcnseg.datasets.data_problem`, the check a run makes too).

>>> voc = download_voc2007("data")                     # doctest: +SKIP
>>> voc                                                # doctest: +SKIP
PosixPath('data/VOCdevkit/VOC2007')

From a shell: ``fcnseg-download --root data``, ``fcnseg-download --dataset voc2012 --sbd``.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import urllib.error
import urllib.request
from http.client import HTTPException
from pathlib import Path
from typing import Iterable, Mapping

from fcnseg.archive import UnsafeArchiveError, safe_extract  # noqa: F401  (part of this module's API)
from fcnseg.datasets import VOC2007, VOC2012, data_problem
from fcnseg.datasets.voc import SBD_DIR, TRAIN_AUG, VOC2012_SPLITS

VOC2007_URL = "http://host.robots.ox.ac.uk/pascal/VOC/voc2007/"
TRAINVAL_TAR = "VOCtrainval_06-Nov-2007.tar"
TEST_TAR = "VOCtest_06-Nov-2007.tar"

# Tarball name -> (url, md5). The test tarball holds the 210 test images and masks.
VOC2007_FILES: dict[str, tuple[str, str]] = {
    TRAINVAL_TAR: (VOC2007_URL + TRAINVAL_TAR, "c52e279531787c972589f7e41ab4ae64"),
    TEST_TAR: (VOC2007_URL + TEST_TAR, "b6e924de25625d8de591ea690078ad9f"),
}
# Which tarball holds each official segmentation split.
VOC2007_SPLITS = {"train": TRAINVAL_TAR, "val": TRAINVAL_TAR, "trainval": TRAINVAL_TAR, "test": TEST_TAR}
# VOC 2012 and SBD, as published in torchvision's VOCSegmentation(year="2012")
# (torchvision/datasets/voc.py) and SBDataset (torchvision/datasets/sbd.py).
VOC2012_URL = "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/"
VOC2012_TAR = "VOCtrainval_11-May-2012.tar"
SBD_URL = "https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/semantic_contours/"
SBD_TGZ = "benchmark.tgz"
VOC2012_FILES: dict[str, tuple[str, str]] = {
    VOC2012_TAR: (VOC2012_URL + VOC2012_TAR, "6cd6e144f989b92b3379bac3b3de84fd"),  # 2.0 GB
    SBD_TGZ: (SBD_URL + SBD_TGZ, "82b4d87ceb2ed10f6038a1cba92111cb"),  # 1.4 GB
}
OFFICIAL_URLS = frozenset(url for url, _ in (*VOC2007_FILES.values(), *VOC2012_FILES.values()))


class ChecksumError(ValueError):
    """A downloaded file does not have the expected md5 (it has been removed)."""


def file_md5(path, chunk_size: int = 1 << 20) -> str:
    """The hex md5 of a file, read in chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def download_file(url: str, dest, *, md5: str | None = None, progress: bool = True, chunk_size: int = 1 << 20,
                  timeout: float = 60) -> Path:
    """Download `url` to `dest`, resuming a previous attempt; verify `md5` first.

    Bytes go to ``<dest>.part``; a rerun asks the server for the rest only (HTTP
    ``Range``; a server that ignores it, or a ``file://`` URL, starts over). Only
    a complete file whose md5 matches is renamed to `dest`. An existing `dest`
    with the right md5 (any, when `md5` is None) is returned at once; one with
    the wrong md5 is downloaded again. Raises `ChecksumError` (a `ValueError`,
    after removing the file) or `ConnectionError` naming the URL (the ``.part``
    is kept, so a rerun resumes).

    >>> download_file(VOC2007_FILES[TEST_TAR][0], "data/downloads/" + TEST_TAR,
    ...               md5=VOC2007_FILES[TEST_TAR][1])      # doctest: +SKIP
    PosixPath('data/downloads/VOCtest_06-Nov-2007.tar')
    """
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    if dest.is_file():
        if md5 is None or file_md5(dest, chunk_size) == md5.lower():
            return dest
        _say(progress, f"{dest} has the wrong md5: removing it and downloading again.")
        dest.unlink()
    dest.parent.mkdir(parents=True, exist_ok=True)
    _say(progress, f"Downloading {url} to {dest}")
    size, total = _fetch(url, part, chunk_size=chunk_size, timeout=timeout, progress=progress)
    if total is not None and size < total:
        raise ConnectionError(f"Download of {url} stopped after {size} of {total} bytes. The partial file "
                              f"was kept at {part}; run again to resume.")  # fmt: skip
    _verify_md5(part, md5, chunk_size)
    os.replace(part, dest)
    return dest


def _fetch(url: str, part: Path, *, chunk_size: int, timeout: float, progress: bool):
    """Append the missing bytes of `url` to `part`; return ``(size, expected_total)``."""
    offset = part.stat().st_size if part.is_file() and url.lower().startswith(("http://", "https://")) else 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            offset = _resume_offset(r, offset, url)
            total = _expected_total(r, offset)
            bar = _progress_bar(total, offset) if progress else None
            with open(part, "ab" if offset else "wb") as f:
                while chunk := r.read(chunk_size):
                    f.write(chunk)
                    if bar:
                        bar.add(len(chunk))
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:  # the .part is not a prefix the server knows: start over
            part.unlink()
            return _fetch(url, part, chunk_size=chunk_size, timeout=timeout, progress=progress)
        raise _network_error(url, part, e) from e
    except (urllib.error.URLError, HTTPException, OSError) as e:
        raise _network_error(url, part, e) from e
    return part.stat().st_size, total


def _resume_offset(response, offset: int, url: str) -> int:
    """Where the response body starts: `offset` for a matching 206, else 0 (start over)."""
    if getattr(response, "status", None) != 206:
        return 0
    match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
    if match and int(match.group(1)) != offset:
        raise ConnectionError(f"{url} answered with an unexpected byte range "
                              f"({response.headers.get('Content-Range')!r} for a request from byte {offset}).")
    return offset


def _expected_total(response, offset: int) -> int | None:
    """The full file size, from Content-Range or offset + Content-Length; None if unknown."""
    match = re.match(r"bytes \d+-\d+/(\d+)", response.headers.get("Content-Range") or "")
    if match:
        return int(match.group(1))
    length = response.headers.get("Content-Length")
    return offset + int(length) if length and length.isdigit() else None


def _network_error(url: str, part: Path, error: BaseException) -> ConnectionError:
    kept = f" The partial file was kept at {part}; run again to resume." if part.exists() else ""
    return ConnectionError(f"Download of {url} failed: {error}.{kept}")


def _verify_md5(path: Path, md5: str | None, chunk_size: int) -> None:
    if md5 is None:
        return
    got = file_md5(path, chunk_size)
    if got != md5.lower():
        path.unlink()
        raise ChecksumError(f"Checksum mismatch for {path}: expected md5 {md5.lower()}, got {got}. The file "
                            "was removed; run again to download it afresh (or check the URL / md5).")


def _progress_bar(total: int | None, done: int):
    """Keras' progress bar in bytes (imported here: the rest of this module needs no Keras)."""
    from keras.utils import Progbar

    bar = Progbar(total, unit_name="B")
    bar.update(done)
    return bar


def _say(enabled: bool, message: str) -> None:
    if enabled:
        print(message, file=sys.stderr, flush=True)


def source_url(url: str, base_url: str | None) -> str:
    """Where to fetch a tarball: `url` itself, except that an official URL or a bare file
    name goes under the mirror `base_url` when one is given (a bare name needs one).

    >>> source_url(VOC2007_FILES[TEST_TAR][0], "file:///mirror")
    'file:///mirror/VOCtest_06-Nov-2007.tar'
    """
    if "://" in url and (not base_url or url not in OFFICIAL_URLS):
        return url
    if not base_url:
        raise ValueError(f"{url!r} is a bare file name: give base_url, the folder that holds it.")
    return base_url.rstrip("/") + "/" + url.rsplit("/", 1)[-1]


def _fetch_and_unpack(parts: dict, root: Path, table: Mapping, base_url: str | None, progress: bool) -> None:
    """For each tarball name of `parts` whose check (a function giving what is missing, or None)
    finds something missing: download it (`table`: name -> (url, md5)) and unpack it into
    `root`; then the check must pass."""
    for name, missing in parts.items():
        if missing() is None:
            _say(progress, f"{name} already unpacked in {root}: nothing to download.")
            continue
        url, md5 = table[name]
        tar_path = download_file(source_url(url, base_url), root / "downloads" / name, md5=md5, progress=progress)
        _say(progress, f"Extracting {tar_path} into {root}")
        safe_extract(tar_path, root)
        problem = missing()
        if problem is not None:
            raise FileNotFoundError(f"After extracting {tar_path}, {problem}: the tarball is not the expected one. "
                                    f"Delete it from {root / 'downloads'} and run again.")  # fmt: skip


def download_voc2007(root="data", *, splits: Iterable[str] | str = ("trainval", "test"), base_url: str | None = None,
                     progress: bool = True, files: Mapping[str, tuple[str, str | None]] | None = None) -> Path:
    """Download and unpack PASCAL VOC 2007 into `root`; return ``root/VOCdevkit/VOC2007``.

    Tarballs are kept in ``root/downloads/`` (a rerun resumes or skips them).
    Nothing happens when every requested split is complete (its list file and
    every image and mask it names exist). Nothing is written outside `root`.

    Args:
        splits: ``"train"``, ``"val"``, ``"trainval"`` (the 450 MB trainval
            tarball) and/or ``"test"`` (430 MB, with the 210 test masks).
        base_url: a mirror (or ``file://`` folder) replacing the official URL.
        progress: print what happens and a progress bar.
        files: overrides of `VOC2007_FILES`, tarball name -> ``(url or file
            name, md5)``; a bare file name is looked up under `base_url`.
    """
    root = Path(root).expanduser()
    voc = root / "VOCdevkit" / "VOC2007"
    splits = (splits,) if isinstance(splits, str) else tuple(splits)
    unknown = sorted(set(splits) - set(VOC2007_SPLITS))
    if unknown or not splits:
        raise ValueError(f"Unknown VOC 2007 split(s) {unknown or splits}: use some of {list(VOC2007_SPLITS)}.")
    tarballs = dict.fromkeys(VOC2007_SPLITS[s] for s in splits)  # ordered, no repeats
    parts = {name: _missing(voc, VOC2007, [s for s in splits if VOC2007_SPLITS[s] == name]) for name in tarballs}
    _fetch_and_unpack(parts, root, {**VOC2007_FILES, **(files or {})}, base_url, progress)
    return voc


def download_voc2012(root="data", *, sbd: bool = False, base_url: str | None = None, progress: bool = True,
                     files: Mapping[str, tuple[str, str | None]] | None = None) -> Path:
    """Download and unpack VOC 2012 (and SBD with ``sbd=True``) into `root`; return ``root/VOCdevkit/VOC2012``.

    As `download_voc2007`: tarballs are kept in ``root/downloads/``, resumed after
    an interruption and md5-checked, then unpacked safely into `root`; a part
    already complete (every file its lists name is present) is not downloaded again.

    Args:
        root: folder for ``VOCdevkit/VOC2012``, ``benchmark_RELEASE`` and ``downloads/``.
        sbd: also SBD's ``benchmark.tgz`` (1.4 GB), for the ``train_aug`` split.
        base_url: a mirror folder (``http://``, ``file://``) holding both tarballs
            under their official names; replaces the official hosts.
        progress: print what happens and a progress bar to stderr.
        files: overrides of `VOC2012_FILES`, tarball name -> ``(url, md5)``;
            with `base_url` the url may be a bare file name.

    >>> voc = download_voc2012("data", sbd=True)    # doctest: +SKIP
    >>> voc                                          # doctest: +SKIP
    PosixPath('data/VOCdevkit/VOC2012')
    """
    root = Path(root).expanduser()
    voc = root / "VOCdevkit" / "VOC2012"
    parts = {VOC2012_TAR: _missing(voc, VOC2012, VOC2012_SPLITS)}
    if sbd:
        parts[SBD_TGZ] = _missing(voc, VOC2012, [TRAIN_AUG], also=root / SBD_DIR)
    _fetch_and_unpack(parts, root, {**VOC2012_FILES, **(files or {})}, base_url, progress)
    return voc


def _missing(voc: Path, spec, splits, *, also: Path | None = None):
    """A check for `_fetch_and_unpack`: what of `splits` is missing under `voc` (and whether
    the folder `also` exists), or None."""

    def missing():
        if also is not None and not also.is_dir():
            return f"{also} does not exist"
        problem = data_problem(voc, spec, splits)
        return None if problem is None else f"{problem.rstrip('.')} (splits {', '.join(splits)})"

    return missing
