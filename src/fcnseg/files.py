"""Atomic file writes: a crash never leaves a half-written file that looks valid.

>>> with atomic_path("results/metrics.json") as tmp:   # doctest: +SKIP
...     tmp.write_text("{}")
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    The temporary name keeps the suffix (``.keras``, ``.png``), so writers that
    check it are satisfied; the file gets the usual (umask) permissions.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path):
    """Yield a temporary folder path beside `path`; it replaces `path` only if the block succeeds.

    An existing `path` is removed just before the rename (a folder cannot be
    renamed onto a non-empty one), so it is gone only once its successor is complete.

    >>> with atomic_dir("exported/saved_model") as tmp:   # doctest: +SKIP
    ...     model.export(tmp, format="tf_saved_model")
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield tmp
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_json(path, data) -> Path:
    """Write `data` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n")
    return Path(path)
