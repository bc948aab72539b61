"""Download and unpack PASCAL VOC 2007, safely and resumably (standard library only).

Why not `keras.utils.get_file`: it checks an md5 too, but an interrupted
download of these 450 MB tarballs starts over, and its extraction has no
all-or-nothing guarantee. What is here adds exactly that: resume with HTTP
``Range`` and a file that gets its final name only once its md5 matches.

Three layers, each usable on its own:

- `download_file`: one URL to one file, resumed after an interruption (HTTP
  ``Range``), md5-verified before it is given its final name.
- `safe_extract`: unpack a tarball with the standard library's ``filter="data"``
  (which refuses members that escape the destination, links pointing out and
  device files), all or nothing.
- `download_voc2007`: both of the above for the official VOC 2007 tarballs,
  skipped when the data is already there.

Example:

>>> from fcnseg.download import download_voc2007
>>> voc = download_voc2007("data")                     # doctest: +SKIP
>>> voc                                                # doctest: +SKIP
PosixPath('data/VOCdevkit/VOC2007')

From a shell: ``fcnseg-download --root data``.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import lzma
import os
import re
import shutil
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zlib
from http.client import HTTPException
from pathlib import Path, PureWindowsPath
from typing import Iterable, Mapping

VOC2007_URL = "http://host.robots.ox.ac.uk/pascal/VOC/voc2007/"
TRAINVAL_TAR = "VOCtrainval_06-Nov-2007.tar"
TEST_TAR = "VOCtest_06-Nov-2007.tar"

# Tarball name -> (url, md5). The test tarball holds the 210 test images and masks.
VOC2007_FILES: dict[str, tuple[str, str]] = {
    TRAINVAL_TAR: (VOC2007_URL + TRAINVAL_TAR, "c52e279531787c972589f7e41ab4ae64"),
    TEST_TAR: (VOC2007_URL + TEST_TAR, "b6e924de25625d8de591ea690078ad9f"),
}
# Which tarball holds each official segmentation split.
VOC2007_SPLITS = {
    "train": TRAINVAL_TAR, "val": TRAINVAL_TAR, "trainval": TRAINVAL_TAR, "test": TEST_TAR,
}  # fmt: skip

__all__ = [
    "VOC2007_FILES",
    "VOC2007_SPLITS",
    "ChecksumError",
    "UnsafeArchiveError",
    "file_md5",
    "download_file",
    "safe_extract",
    "download_voc2007",
    "main",
]


class ChecksumError(ValueError):
    """A downloaded file does not have the expected md5 (it has been removed)."""


class UnsafeArchiveError(ValueError):
    """A tarball holds a member that would be written outside the destination."""


# --------------------------------------------------------------------------- download


def file_md5(path, chunk_size: int = 1 << 20) -> str:
    """The hex md5 of a file, read in chunks.

    >>> file_md5("data/downloads/VOCtest_06-Nov-2007.tar")   # doctest: +SKIP
    'b6e924de25625d8de591ea690078ad9f'
    """
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def download_file(
    url: str,
    dest,
    *,
    md5: str | None = None,
    progress: bool = True,
    chunk_size: int = 1 << 20,
    timeout: float = 60,
) -> Path:
    """Download `url` to `dest`, resuming a previous attempt; verify `md5` first.

    Bytes go to ``<dest>.part``; a rerun after an interruption asks the server
    for the rest only (HTTP ``Range``; a server that ignores it, or a
    ``file://`` URL, simply starts over). Only a complete file whose md5
    matches is renamed to `dest`, so `dest` never holds a bad file. An existing
    `dest` with the right md5 (or any existing `dest` when `md5` is None) is
    returned at once; one with the wrong md5 is removed and downloaded again.

    Raises `ChecksumError` (a `ValueError`) when the md5 differs, after removing
    the file, and `ConnectionError` naming the URL when the transfer fails (the
    ``.part`` file is kept, so a rerun resumes).

    >>> download_file(
    ...     "http://host.robots.ox.ac.uk/pascal/VOC/voc2007/VOCtest_06-Nov-2007.tar",
    ...     "data/downloads/VOCtest_06-Nov-2007.tar",
    ...     md5="b6e924de25625d8de591ea690078ad9f",
    ... )                                                   # doctest: +SKIP
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
        raise ConnectionError(
            f"Download of {url} stopped after {size} of {total} bytes. The partial file "
            f"was kept at {part}; run again to resume."
        )
    _verify_md5(part, md5, chunk_size)
    os.replace(part, dest)
    return dest


def _fetch(url: str, part: Path, *, chunk_size: int, timeout: float, progress: bool):
    """Append the missing bytes of `url` to `part`; return ``(size, expected_total)``."""
    offset = part.stat().st_size if part.is_file() and _is_http(url) else 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            offset = _resume_offset(r, offset, url)
            total = _expected_total(r, offset)
            bar = _ProgressBar(part.name.removesuffix(".part"), total, offset, enabled=progress)
            with open(part, "ab" if offset else "wb") as f:
                while chunk := r.read(chunk_size):
                    f.write(chunk)
                    bar.update(len(chunk))
            bar.close()
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:  # the .part is not a prefix the server knows: start over
            part.unlink()
            return _fetch(url, part, chunk_size=chunk_size, timeout=timeout, progress=progress)
        raise _network_error(url, part, e) from e
    except (urllib.error.URLError, HTTPException, OSError) as e:
        raise _network_error(url, part, e) from e
    return part.stat().st_size, total


def _is_http(url: str) -> bool:
    return url.lower().startswith(("http://", "https://"))


def _resume_offset(response, offset: int, url: str) -> int:
    """Where the response body starts: `offset` for a matching 206, else 0 (start over)."""
    if getattr(response, "status", None) != 206:
        return 0
    match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
    if match and int(match.group(1)) != offset:
        raise ConnectionError(
            f"{url} answered with an unexpected byte range "
            f"({response.headers.get('Content-Range')!r} for a request from byte {offset})."
        )
    return offset


def _expected_total(response, offset: int) -> int | None:
    """The full file size, from Content-Range or offset + Content-Length; None if unknown."""
    match = re.match(r"bytes \d+-\d+/(\d+)", response.headers.get("Content-Range") or "")
    if match:
        return int(match.group(1))
    length = response.headers.get("Content-Length")
    return offset + int(length) if length and length.isdigit() else None


def _network_error(url: str, part: Path, error: BaseException) -> ConnectionError:
    kept = f"The partial file was kept at {part}; run again to resume." if part.exists() else ""
    return ConnectionError(f"Download of {url} failed: {error}. {kept}".strip())


def _verify_md5(path: Path, md5: str | None, chunk_size: int) -> None:
    if md5 is None:
        return
    got = file_md5(path, chunk_size)
    if got != md5.lower():
        path.unlink()
        raise ChecksumError(
            f"Checksum mismatch for {path}: expected md5 {md5.lower()}, got {got}. The file "
            "was removed; run again to download it afresh (or check the URL / md5)."
        )


class _ProgressBar:
    """One stderr line, rewritten with ``\\r``: name, percent, MB done / total, MB/s."""

    def __init__(self, name: str, total: int | None, done: int = 0, *, enabled: bool = True):
        self.name, self.total, self.done, self.enabled = name, total, done, enabled
        self.start_done, self.start = done, time.monotonic()
        self.last_draw = 0.0

    def update(self, n: int) -> None:
        self.done += n
        if self.enabled and time.monotonic() - self.last_draw >= 0.1:
            self._draw()

    def close(self) -> None:
        if self.enabled:
            self._draw()
            sys.stderr.write("\n")
            sys.stderr.flush()

    def _draw(self) -> None:
        self.last_draw = now = time.monotonic()
        speed = (self.done - self.start_done) / max(now - self.start, 1e-6) / 1e6
        mb = self.done / 1e6
        if self.total:
            text = f"{100 * self.done / self.total:5.1f}%  {mb:.1f}/{self.total / 1e6:.1f} MB"
        else:
            text = f"{mb:.1f} MB"
        sys.stderr.write(f"\r  {self.name}  {text}  {speed:.1f} MB/s ")
        sys.stderr.flush()


def _say(enabled: bool, message: str) -> None:
    if enabled:
        print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- extract


def safe_extract(tar_path, dest) -> Path:
    """Extract a tarball into `dest`, refusing anything that would land outside it.

    The checking is the standard library's ``filter="data"`` (absolute paths,
    ``..`` escapes, links pointing outside, device files and FIFOs), with one
    change: a member with an absolute path is refused instead of stripped of
    its leading slash. Members are unpacked into a temporary folder inside
    `dest` and moved into place only when all of them passed, so a refused
    member (`UnsafeArchiveError`, naming it) or a corrupt or truncated tarball
    (`ValueError`, naming the file) leaves `dest` as it was. Returns `dest`.

    >>> safe_extract("data/downloads/VOCtest_06-Nov-2007.tar", "data")   # doctest: +SKIP
    PosixPath('data')
    """
    tar_path, dest = Path(tar_path), Path(dest)
    if not tar_path.is_file():
        raise FileNotFoundError(f"Archive not found: {tar_path}")
    dest.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".extracting-", dir=dest))
    try:
        with tarfile.open(tar_path, "r:*") as tar:
            _check_complete(tar_path, tar.getmembers())
            tar.extractall(staging, filter=_data_filter)
        _move_into(staging, dest)
    except tarfile.FilterError as e:
        raise UnsafeArchiveError(
            f"Refusing to extract {tar_path}: member {e.tarinfo.name!r} {_unsafe_reason(e, dest)}. "
            "Nothing was extracted; the archive is unsafe or not the expected one."
        ) from None
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, lzma.LZMAError) as e:
        raise ValueError(
            f"Cannot extract {tar_path}: the archive is corrupt or truncated ({e}). "
            "Delete it and download it again."
        ) from e
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest


def _data_filter(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo:
    """tarfile's ``"data"`` filter, but an absolute member path is refused rather than made relative."""
    if member.name.startswith(("/", "\\")) or PureWindowsPath(member.name).drive:
        raise tarfile.AbsolutePathError(member)
    return tarfile.data_filter(member, path)


def _unsafe_reason(error: tarfile.FilterError, dest: Path) -> str:
    """The refused member's problem in words (the standard library's error names its own temporary folder)."""
    member = error.tarinfo
    if isinstance(error, tarfile.AbsolutePathError):
        return "has an absolute path"
    if isinstance(error, (tarfile.AbsoluteLinkError, tarfile.LinkOutsideDestinationError)):
        kind = "symlink" if member.issym() else "hard link"
        return f"is a {kind} to {member.linkname!r}, outside {dest}"
    if isinstance(error, tarfile.SpecialFileError):
        return "is a device file, FIFO or other special file"
    return f"would be written outside {dest}"


def _check_complete(tar_path: Path, members: list[tarfile.TarInfo]) -> None:
    """Catch a truncated uncompressed tarball (tarfile reads a cut at a header as the end)."""
    if not members:
        raise tarfile.ReadError("it holds no files")
    with open(tar_path, "rb") as f:
        if f.read(6).startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ")):
            return  # compressed: truncation shows up while reading
    data_end = max(
        m.offset_data + (m.size if m.isreg() and not m.issparse() else 0)
        for m in members
    )
    needed = -(-data_end // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE + 2 * tarfile.BLOCKSIZE
    if tar_path.stat().st_size < needed:  # data and the end-of-archive marker must be there
        raise tarfile.ReadError(f"{tar_path.stat().st_size} bytes, at least {needed} expected")


def _move_into(source: Path, dest: Path) -> None:
    """Move everything in `source` into `dest`, merging folders that both have."""
    for entry in source.iterdir():
        target = dest / entry.name
        if entry.is_dir() and not entry.is_symlink() and target.is_dir() and not target.is_symlink():
            _move_into(entry, target)
        else:
            os.replace(entry, target)


# --------------------------------------------------------------------------- VOC 2007


def download_voc2007(
    root="data",
    *,
    splits: Iterable[str] | str = ("trainval", "test"),
    base_url: str | None = None,
    progress: bool = True,
    files: Mapping[str, tuple[str, str | None]] | None = None,
) -> Path:
    """Download and unpack PASCAL VOC 2007 into `root`; return ``root/VOCdevkit/VOC2007``.

    Tarballs are kept in ``root/downloads/`` (a rerun resumes or skips them) and
    unpacked into `root`. Nothing happens when every requested split is already
    complete: its ``ImageSets/Segmentation/<split>.txt`` exists and every image
    and mask it lists is present. Nothing is written outside `root`.

    Args:
        root: folder that will hold ``VOCdevkit/VOC2007`` and ``downloads/``.
        splits: official splits needed: ``"train"``, ``"val"``, ``"trainval"``
            (the trainval tarball, 450 MB) and/or ``"test"`` (the test tarball,
            430 MB, with the 210 test masks).
        base_url: replaces ``http://host.robots.ox.ac.uk/pascal/VOC/voc2007/``
            (a mirror, a local ``file://`` folder).
        progress: print what happens and a progress bar to stderr.
        files: overrides of `VOC2007_FILES`, tarball name -> ``(url or file
            name, md5)``; a bare file name is looked up under `base_url`.

    >>> voc = download_voc2007("data", splits=("trainval",))   # doctest: +SKIP
    >>> from fcnseg.datasets import read_split
    >>> len(read_split(voc, "train"))                          # doctest: +SKIP
    209
    """
    root = Path(root).expanduser()
    voc = root / "VOCdevkit" / "VOC2007"
    splits = (splits,) if isinstance(splits, str) else tuple(splits)
    unknown = sorted(set(splits) - set(VOC2007_SPLITS))
    if unknown or not splits:
        raise ValueError(
            f"Unknown VOC 2007 split(s) {unknown or splits}: use some of {list(VOC2007_SPLITS)}."
        )
    table = {**VOC2007_FILES, **(files or {})}
    missing = [s for s in splits if not _split_complete(voc, s)]
    if not missing:
        _say(progress, f"VOC 2007 {', '.join(splits)} already in {voc}: nothing to download.")
        return voc
    for name in dict.fromkeys(VOC2007_SPLITS[s] for s in missing):  # ordered, no repeats
        url, md5 = table[name]
        url = _url_for(url, base_url)
        tar_path = download_file(url, root / "downloads" / name, md5=md5, progress=progress)
        _say(progress, f"Extracting {tar_path} into {root}")
        safe_extract(tar_path, root)
    still_missing = [s for s in splits if not _split_complete(voc, s)]
    if still_missing:
        raise FileNotFoundError(
            f"After extraction, split(s) {still_missing} are still incomplete in {voc} (a list "
            "file, image or mask is missing). The tarballs in "
            f"{root / 'downloads'} are not the expected ones: delete them and run again."
        )
    return voc


def _url_for(url_or_name: str, base_url: str | None) -> str:
    """Full URL of a tarball: a bare name or an official URL goes under `base_url`."""
    name = url_or_name.removeprefix(VOC2007_URL)
    if "://" in name:
        return name
    return (base_url.rstrip("/") + "/" if base_url else VOC2007_URL) + name


_VOC_FILES = (("JPEGImages", ".jpg"), ("SegmentationClass", ".png"))


def _split_complete(voc: Path, split: str) -> bool:
    """Whether the split's list file exists and every image and mask it names does."""
    list_file = voc / "ImageSets" / "Segmentation" / f"{split}.txt"
    if not list_file.is_file():
        return False
    ids = [line.strip() for line in list_file.read_text().splitlines() if line.strip()]
    files = [voc / d / f"{i}{ext}" for i in ids for d, ext in _VOC_FILES]
    return bool(ids) and all(f.is_file() for f in files)


# --------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    """Command line: ``fcnseg-download --root data [--splits ...] [--base-url URL]``;
    ``fcnseg-download --dataset voc2012 --sbd`` for VOC 2012 and SBD (`fcnseg.voc2012`)."""
    parser = argparse.ArgumentParser(
        prog="fcnseg-download", description="Download and unpack PASCAL VOC 2007 (or VOC 2012 and SBD)."
    )
    parser.add_argument("--root", default="data", help="holds VOCdevkit/ and downloads/")
    parser.add_argument(
        "--splits", nargs="+", default=["trainval", "test"], choices=sorted(VOC2007_SPLITS)
    )
    parser.add_argument("--dataset", default="voc2007", choices=("voc2007", "voc2012"),
                        help="voc2012: the VOC 2012 trainval tarball (train, val, trainval; --splits is VOC 2007's)")
    parser.add_argument("--sbd", action="store_true",
                        help="with --dataset voc2012: also SBD (benchmark.tgz, 1.4 GB) for the train_aug split")
    parser.add_argument("--base-url", default=None, help=f"mirror replacing {VOC2007_URL}")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    args = parser.parse_args(argv)
    if args.sbd and args.dataset != "voc2012":
        parser.error("--sbd goes with --dataset voc2012 (SBD extends VOC 2012's training set)")
    try:
        if args.dataset == "voc2012":
            from fcnseg.voc2012 import download_voc2012

            voc = download_voc2012(args.root, sbd=args.sbd, base_url=args.base_url, progress=not args.quiet)
        else:
            voc = download_voc2007(
                args.root, splits=args.splits, base_url=args.base_url, progress=not args.quiet
            )
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(voc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
