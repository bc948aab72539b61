"""Download and unpack PASCAL VOC 2007, safely and resumably.

Why not `keras.utils.get_file`: an interrupted download of these 450 MB
tarballs starts over there, and its extraction is not all-or-nothing. Here:

- `download_file`: one URL to one file, resumed after an interruption (HTTP
  ``Range``), md5-verified before it gets its final name (progress: `keras.utils.Progbar`).
- `safe_extract`: unpack with the standard library's ``filter="data"``, all or nothing.
- `download_voc2007`: both for the official tarballs, skipped when the data is there.

>>> voc = download_voc2007("data")                     # doctest: +SKIP
>>> voc                                                # doctest: +SKIP
PosixPath('data/VOCdevkit/VOC2007')

From a shell: ``fcnseg-download --root data``.
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
    table = {**VOC2007_FILES, **(files or {})}
    missing = [s for s in splits if not _split_complete(voc, s)]
    if not missing:
        _say(progress, f"VOC 2007 {', '.join(splits)} already in {voc}: nothing to download.")
        return voc
    for name in dict.fromkeys(VOC2007_SPLITS[s] for s in missing):  # ordered, no repeats
        url, md5 = table[name]
        tar_path = download_file(_url_for(url, base_url), root / "downloads" / name, md5=md5, progress=progress)
        _say(progress, f"Extracting {tar_path} into {root}")
        safe_extract(tar_path, root)
    still_missing = [s for s in splits if not _split_complete(voc, s)]
    if still_missing:
        raise FileNotFoundError(f"After extraction, split(s) {still_missing} are still incomplete in {voc} (a list "
                                f"file, image or mask is missing). The tarballs in {root / 'downloads'} are not the "
                                "expected ones: delete them and run again.")  # fmt: skip
    return voc


def _url_for(url_or_name: str, base_url: str | None) -> str:
    """Full URL of a tarball: a bare name or an official URL goes under `base_url`."""
    name = url_or_name.removeprefix(VOC2007_URL)
    if "://" in name:
        return name
    return (base_url.rstrip("/") + "/" if base_url else VOC2007_URL) + name


def _split_complete(voc: Path, split: str) -> bool:
    """Whether the split's list file exists and every image and mask it names does."""
    list_file = voc / "ImageSets" / "Segmentation" / f"{split}.txt"
    ids = list_file.read_text().split() if list_file.is_file() else []
    files = [voc / d / f"{i}{ext}" for i in ids for d, ext in (("JPEGImages", ".jpg"), ("SegmentationClass", ".png"))]
    return bool(ids) and all(f.is_file() for f in files)
