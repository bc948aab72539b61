"""Trained models that ship with the project, loaded by name.

A shipped model is a ``.keras`` file in the repository's ``models/`` folder
(or ``$FCN_MODELS_DIR``) with a JSON card beside it: the class list, the
input contract, the recipe and the scores it was released with.

>>> from fcnseg import load_fcn, pretrained_info
>>> model = load_fcn("camvid-fcn8s")                      # doctest: +SKIP
>>> pretrained_info("camvid-fcn8s")["classes"][:3]        # doctest: +SKIP
['Sky', 'Building', 'Pole']

From a shell, the name works wherever a model file does:

    fcnseg-predict camvid-fcn8s photos/ --out segmented
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from fcnseg.checks import one_of

PRETRAINED = {"camvid-fcn8s": "camvid_fcn8s"}  # name -> file stem in models/


def models_dir() -> Path:
    """``$FCN_MODELS_DIR``, else the ``models/`` folder of the checkout the package was installed from."""
    return Path(os.environ.get("FCN_MODELS_DIR") or Path(__file__).resolve().parents[2] / "models")


def pretrained_path(name: str) -> Path:
    """The ``.keras`` file of the shipped model `name`, or `FileNotFoundError` saying where it was looked for.

    >>> pretrained_path("camvid-fcn8s").name                  # doctest: +SKIP
    'camvid_fcn8s.keras'
    """
    path = models_dir() / f"{PRETRAINED[one_of('pretrained model', name, tuple(PRETRAINED))]}.keras"
    if not path.is_file():
        raise FileNotFoundError(
            f"The shipped model {name!r} is not at {path}. It lives in the repository's models/ folder: "
            "install fcnseg from a clone (pip install -e .), or set FCN_MODELS_DIR to a folder holding "
            f"{path.name}, or pass the file's path instead of the name."
        )
    return path


def pretrained_info(name: str) -> dict:
    """The JSON card of the shipped model `name`: classes, input contract, recipe, scores, sha256."""
    return json.loads(pretrained_path(name).with_suffix(".json").read_text())


def file_sha256(path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def release_model(model, path, *, card: dict) -> Path:
    """Write `model` for users: its architecture and weights without the optimizer's
    state (a trained run's ``best.keras`` carries Adam's two moments, 3x the size),
    and ``card`` (classes, input contract, scores...) as JSON beside it, with the
    file's SHA-256 added.

    >>> release_model(load_fcn("runs/camvid_fcn8s/best.keras"), "models/camvid_fcn8s.keras",
    ...               card={"classes": list(CAMVID_CLASSES)})   # doctest: +SKIP
    """
    import keras

    from fcnseg.files import atomic_path, write_json

    path = Path(path)
    weights_only = keras.models.clone_model(model)
    weights_only.set_weights(model.get_weights())
    with atomic_path(path) as tmp:
        weights_only.save(tmp)
    write_json(path.with_suffix(".json"), {**card, "file": path.name, "sha256": file_sha256(path)})
    return path
