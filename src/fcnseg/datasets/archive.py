"""Unpack a tarball safely: nothing outside the destination, all or nothing.

>>> safe_extract("data/downloads/VOCtest_06-Nov-2007.tar", "data")   # doctest: +SKIP
PosixPath('data')
"""

from __future__ import annotations

import gzip
import lzma
import os
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path, PureWindowsPath


class UnsafeArchiveError(ValueError):
    """A tarball holds a member that would be written outside the destination."""


def safe_extract(tar_path, dest) -> Path:
    """Extract a tarball into `dest`, refusing anything that would land outside it.

    The checks are the standard library's ``filter="data"`` (``..`` escapes,
    links pointing out, device files and FIFOs), except that an absolute member
    path is refused rather than made relative. Members go to a temporary folder
    inside `dest` and are moved into place only when all passed, so a refused
    member (`UnsafeArchiveError`) or a corrupt or truncated tarball (`ValueError`)
    leaves `dest` as it was. Returns `dest`.
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
