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

from fcnseg.datasets.catalog import dataset_env_vars


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


def keras_home() -> Path:
    """Keras' cache folder: ``$KERAS_HOME``, else ``~/.keras`` (where Keras keeps downloaded weights).

    >>> keras_home().name if "KERAS_HOME" not in os.environ else ".keras"
    '.keras'
    """
    return Path(os.environ.get("KERAS_HOME") or "~/.keras").expanduser()


def portable_path(path, env_vars=None) -> str | None:
    """`path` as recorded in results files, the same on every machine: never an absolute path.

    A relative path stays as it is; a path under the working folder becomes
    relative to it; a path under a folder that one of `env_vars` names is
    written ``$VAR/rest``; any other path is recorded by its name. `env_vars`
    defaults to the datasets' variables (`fcnseg.datasets.dataset_env_vars`) and
    ``FCN_BACKBONE_WEIGHTS``.

    >>> portable_path("runs/fcn8s/best.keras")
    'runs/fcn8s/best.keras'
    >>> portable_path(Path("/") / "data" / "vgg16_notop.h5")  # outside the working folder
    'vgg16_notop.h5'
    """
    if path is None:
        return None
    path = Path(path).expanduser()
    if not path.is_absolute():
        return path.as_posix()
    resolved = path.resolve()
    if resolved.is_relative_to(Path.cwd().resolve()):
        return resolved.relative_to(Path.cwd().resolve()).as_posix() or "."
    for name in (*dataset_env_vars(), "FCN_BACKBONE_WEIGHTS") if env_vars is None else env_vars:
        value = os.environ.get(name)
        if value and Path(value).expanduser().resolve() in (resolved, *resolved.parents):
            inside = resolved.relative_to(Path(value).expanduser().resolve()).as_posix()
            return f"${name}" + ("" if inside == "." else f"/{inside}")
    return path.name


def imagenet_or_file(value, env_var: str, what: str, hint: str = "") -> str:
    """``"imagenet"``, or the path of an existing weight file as a string. ``"imagenet"`` is
    replaced by the file that `env_var` names when it is set (offline machines); a missing
    file raises `FileNotFoundError` naming it (and `env_var` when it came from there), then `hint`.

    >>> imagenet_or_file("imagenet", "FCNSEG_UNSET_VARIABLE", "VGG16 weight file")
    'imagenet'
    """
    origin = ""
    if value == "imagenet" and os.environ.get(env_var):
        value, origin = os.environ[env_var], f" (from {env_var})"
    if value == "imagenet":
        return value
    path = Path(value).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}{origin}{hint}")
    return str(path)
