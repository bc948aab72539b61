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


def release_model(run_dir, name: str = "camvid-fcn8s", *, out_dir=None) -> Path:
    """Release a training run's best model as the shipped model `name`.

    Writes ``<stem>.keras``: the architecture and weights of ``run_dir/best.keras``
    without the optimizer's state (Adam's two moments would triple the size),
    and ``<stem>.json``: the card with the class list, the input contract, the
    recipe and scores from ``run_dir/metrics.json``, and the file's SHA-256.

    >>> release_model("runs/camvid_fcn8s", "camvid-fcn8s")   # doctest: +SKIP
    PosixPath('.../models/camvid_fcn8s.keras')
    """
    import keras

    from fcnseg.datasets import get_spec
    from fcnseg.fcn import load_fcn
    from fcnseg.files import atomic_path, write_json

    run_dir = Path(run_dir)
    stem = PRETRAINED[one_of("pretrained model", name, tuple(PRETRAINED))]
    path = Path(out_dir or models_dir()) / f"{stem}.keras"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    model = load_fcn(run_dir / "best.keras")
    weights_only = keras.models.clone_model(model)
    weights_only.set_weights(model.get_weights())
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        weights_only.save(tmp)
    spec = get_spec(metrics["parameters"]["dataset"])
    card = {
        "name": name,
        "file": path.name,
        "sha256": file_sha256(path),
        "dataset": spec.name,
        "classes": list(spec.classes),
        "input": {"channels": model.input_shape[-1], "values": "RGB, 0..255 (uint8 or float)",
                  "size": "any height and width"},
        "output": f"logits (batch, height, width, {model.output_shape[-1]}) at the input's size; argmax = class id",
        "parameters_count": model.count_params(),
        **{k: metrics[k] for k in ("parameters", "encoder_weights", "best_checkpoint", "train_seconds")},
        "test": {k: metrics[k] for k in ("split", "num_images", "mean_iou", "frequency_weighted_iou",
                                         "pixel_accuracy", "iou_per_class")},
    }
    write_json(path.with_suffix(".json"), card)
    return path
