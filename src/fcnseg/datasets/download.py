"""Download and unpack a dataset's tarballs, safely and resumably; a dataset's own
download (``DatasetSpec.download``, e.g. `fcnseg.datasets.voc.download_voc2007`) names
its tarballs and calls `fetch_and_unpack`.

Why not `keras.utils.get_file`: an interrupted download of a 450 MB tarball starts over
there, and its extraction is not all-or-nothing. Here:

- `download_file`: one URL to one file, resumed after an interruption (HTTP
  ``Range``), md5-verified before it gets its final name (progress: `keras.utils.Progbar`).
- `fetch_and_unpack`: the official tarballs (or a mirror's, `source_url`), each skipped
  when what it holds is there, unpacked with `fcnseg.datasets.archive.safe_extract` (the standard
  library's ``filter="data"``, all or nothing).

>>> download_file("https://example.org/data.tar", "data/downloads/data.tar")  # doctest: +SKIP
PosixPath('data/downloads/data.tar')

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
from typing import Callable, Collection, Mapping

from fcnseg.datasets.archive import safe_extract


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

    >>> download_file("https://example.org/data.tar", "data/downloads/data.tar",
    ...               md5="b6e924de25625d8de591ea690078ad9f")      # doctest: +SKIP
    PosixPath('data/downloads/data.tar')
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


def source_url(url: str, base_url: str | None, official: Collection[str] = ()) -> str:
    """Where to fetch a tarball: `url` itself, except that one of the `official` URLs or a
    bare file name goes under the mirror `base_url` when one is given (a bare name needs one).

    >>> source_url("https://example.org/pub/a.tar", "file:///mirror", official={"https://example.org/pub/a.tar"})
    'file:///mirror/a.tar'
    >>> source_url("https://elsewhere.org/a.tar", "file:///mirror")
    'https://elsewhere.org/a.tar'
    """
    if "://" in url and (not base_url or url not in official):
        return url
    if not base_url:
        raise ValueError(f"{url!r} is a bare file name: give base_url, the folder that holds it.")
    return base_url.rstrip("/") + "/" + url.rsplit("/", 1)[-1]


def fetch_and_unpack(parts: Mapping[str, Callable[[], str | None]], root: Path, table: Mapping[str, tuple[str, str]],
                     *, files: Mapping[str, tuple[str, str | None]] | None = None, base_url: str | None = None,
                     progress: bool = True) -> None:
    """For each tarball name of `parts` whose check (a function giving what is missing, or None)
    finds something missing: download it and unpack it into `root`; then the check must pass.

    `table` maps a tarball name to its official ``(url, md5)``; `files` overrides some, where
    the url may be a bare file name under `base_url`, a mirror that replaces the official hosts.
    Tarballs are kept in ``root/downloads/``, so a rerun resumes or skips them.
    """
    official = {url for url, _ in table.values()}
    table = {**table, **(files or {})}
    for name, missing in parts.items():
        if missing() is None:
            _say(progress, f"{name} already unpacked in {root}: nothing to download.")
            continue
        url, md5 = table[name]
        tar_path = download_file(source_url(url, base_url, official), root / "downloads" / name, md5=md5,
                                 progress=progress)  # fmt: skip
        _say(progress, f"Extracting {tar_path} into {root}")
        safe_extract(tar_path, root)
        problem = missing()
        if problem is not None:
            raise FileNotFoundError(f"After extracting {tar_path}, {problem}: the tarball is not the expected one. "
                                    f"Delete it from {root / 'downloads'} and run again.")  # fmt: skip
