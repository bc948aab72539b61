"""What a run records: ``metrics.json``, one schema written by `write_metrics` for the
notebook and ``fcnseg-train`` alike, the encoder weights in words (`encoder_label`),
the epochs its ``history.csv`` logged (`logged_epochs`), and a run's best model packaged as a
shipped model's folder (`save_pretrained`).

>>> encoder_label(None)
'random initialisation (no pre-training)'
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

from fcnseg.models.encoders import get_encoder
from fcnseg.files import portable_path, write_json
from fcnseg.models.pretrained import MODEL_FILE, shipped_name
from fcnseg.recipes import HISTORIES
from fcnseg.figures.scores import REFERENCE

PATHS = ("data_root", "init_from", "checkpoint", "results_dir", "run_dir", "backbone_weights")


def write_metrics(path, scores: dict, *, parameters: dict, encoder: str, train_seconds=None, run_dir=None,
                  **extra) -> dict:
    """Write a run's ``metrics.json`` atomically and return what was written.

    Keys: ``parameters`` (the recipe's options and the run's settings, paths
    recorded portably), ``encoder_weights`` (in words), ``train_seconds``,
    ``best_checkpoint`` (the run's ``best.json``: score and epoch, or None),
    the scores of `fcnseg.inference.evaluation.evaluate`, the reference's figure, then `extra`.

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


def logged_epochs(history_csv) -> list[dict[str, str]]:
    """The epochs a run's ``history.csv`` (its `CSVLogger`) holds, oldest first, one dict per epoch.

    >>> sum(float(row["epoch_seconds"]) for row in logged_epochs("runs/camvid_fcn8s/history.csv"))  # doctest: +SKIP
    """
    with Path(history_csv).open(newline="") as f:
        return list(csv.DictReader(f))


def encoder_label(weights, checkpoint=None, encoder="vgg16") -> str:
    """The weights of `encoder` (a name in `fcnseg.models.encoders.ENCODERS`) in words: ImageNet, random,
    a file name, or a checkpoint's."""
    if checkpoint is not None:
        checkpoint = Path(checkpoint)
        name = shipped_name(checkpoint) or checkpoint.name
        try:
            record = json.loads((checkpoint.parent / "metrics.json").read_text())
            parameters = record["parameters"]
            used = record.get("encoder_weights") or encoder_label(parameters["backbone_weights"],
                                                                  encoder=parameters.get("encoder", "vgg16"))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return f"as trained in checkpoint {name} (initial encoder weights not recorded)"
        return f"{used}, then trained (checkpoint {name})"
    if weights == "imagenet":
        return f"ImageNet (Keras {get_encoder(encoder).application})"
    if weights is None:
        return "random initialisation (no pre-training)"
    return f"{Path(weights).name} (a file, not the Keras ImageNet weights)"


def save_pretrained(run_dir, folder, *, card: dict) -> Path:
    """Package the best model of training run `run_dir` as a folder like the shipped ones.

    Writes ``folder/model.keras`` with float16 weights (`fcnseg.models.fcn.save_fcn`),
    ``folder/metrics.json`` (the run's record with `card` added: what the model
    expects, where it comes from) and ``folder/history.csv`` (and a two-stage
    run's ``folder/stage1/history.csv``).
    `load_fcn(folder / "model.keras")` loads the result; under `fcnseg.models.pretrained.MODELS_DIR`, by its name.

    >>> save_pretrained("runs/camvid_fcn8s", "my-camvid-fcn8s", card={"dataset": "camvid", "classes": [...]})  # doctest: +SKIP
    """
    from fcnseg.models.fcn import load_fcn, save_fcn

    run_dir, folder = Path(run_dir), Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_fcn(load_fcn(run_dir / "best.keras"), folder / MODEL_FILE, weights_dtype="float16")
    record = json.loads((run_dir / "metrics.json").read_text())
    write_json(folder / "metrics.json", {**record, "card": card})
    for history in HISTORIES:
        if (run_dir / history).is_file():
            (folder / history).parent.mkdir(exist_ok=True)
            shutil.copyfile(run_dir / history, folder / history)
    return folder
