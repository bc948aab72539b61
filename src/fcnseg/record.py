"""What a run records: ``metrics.json``, one schema written by `write_metrics` for the
notebook and ``fcnseg-train`` alike, and the encoder weights in words (`encoder_label`).

>>> encoder_label(None)
'random initialisation (no pre-training)'
"""

from __future__ import annotations

import json
from pathlib import Path

from fcnseg.files import portable_path, write_json
from fcnseg.pretrained import shipped_name
from fcnseg.scoreboard import REFERENCE

PATHS = ("data_root", "init_from", "checkpoint", "results_dir", "run_dir", "backbone_weights")


def write_metrics(path, scores: dict, *, parameters: dict, encoder: str, train_seconds=None, run_dir=None,
                  **extra) -> dict:
    """Write a run's ``metrics.json`` atomically and return what was written.

    Keys: ``parameters`` (the recipe's options and the run's settings, paths
    recorded portably), ``encoder_weights`` (in words), ``train_seconds``,
    ``best_checkpoint`` (the run's ``best.json``: score and epoch, or None),
    the scores of `fcnseg.evaluation.evaluate`, the reference's figure, then `extra`.

    >>> write_metrics("runs/x/metrics.json", scores, parameters={"epochs": 1}, encoder="random")  # doctest: +SKIP
    """
    record_file = Path(run_dir or ".") / "best.json"
    best = json.loads(record_file.read_text()) if run_dir is not None and record_file.is_file() else None
    parameters = {k: _recordable(k, v) for k, v in parameters.items()}
    record = {"parameters": parameters, "encoder_weights": encoder, "train_seconds": train_seconds,
              "best_checkpoint": best, **scores, "reference_notebook": REFERENCE, **extra}  # fmt: skip
    write_json(path, record)
    return record


def _recordable(key, value):
    if isinstance(value, tuple):
        return list(value)
    if key in PATHS and value not in ("imagenet", None):
        return portable_path(value)
    return getattr(value, "name", value)  # a DatasetSpec by its name


def encoder_label(weights, checkpoint=None) -> str:
    """The encoder weights in words: ImageNet, random, a file name, or a checkpoint's."""
    if checkpoint is not None:
        checkpoint = Path(checkpoint)
        name = shipped_name(checkpoint) or checkpoint.name
        try:
            record = json.loads((checkpoint.parent / "metrics.json").read_text())
            used = record.get("encoder_weights") or encoder_label(record["parameters"]["backbone_weights"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return f"as trained in checkpoint {name} (initial encoder weights not recorded)"
        return f"{used}, then trained (checkpoint {name})"
    if weights == "imagenet":
        return "ImageNet (Keras VGG16)"
    if weights is None:
        return "random initialisation (no pre-training)"
    return f"{Path(weights).name} (a file, not the Keras ImageNet weights)"
