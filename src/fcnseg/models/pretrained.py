"""Models that ship inside the package, found by name, and street photos to try them on.

Each shipped model is a folder of ``fcnseg/models/``: ``model.keras`` (float16
weights, `fcnseg.models.fcn.save_fcn`), ``metrics.json`` (the training run's record:
recipe, encoder, scores, plus what the model expects in ``card``),
``history.csv`` and ``README.md`` (the model card); `fcnseg.training.record.save_pretrained`
packages a training run as such a folder. Every function that takes a model file
takes such a name too:

>>> available_models()
('camvid-fcn8s',)
>>> model_card("camvid-fcn8s")["classes"][:3]
['Sky', 'Building', 'Pole']
>>> model = fcnseg.load_fcn("camvid-fcn8s")                               # doctest: +SKIP

and so do the command lines (``fcnseg-predict camvid-fcn8s photos/ --out seg``)
and the notebook (``checkpoint="camvid-fcn8s"``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parent  # each shipped model is a folder beside this module
MODEL_FILE = "model.keras"
# Four MIT-licensed highway photos (sample/street/SOURCE.txt): what a shipped model is shown on
# when no dataset is at hand.
STREET_SAMPLE = Path(__file__).resolve().parent.parent / "sample" / "street"


def available_models() -> tuple[str, ...]:
    """Names of the models that ship with this installation."""
    if not MODELS_DIR.is_dir():
        return ()
    return tuple(sorted(p.name for p in MODELS_DIR.iterdir() if (p / MODEL_FILE).is_file()))


def model_file(model, *, role: str = "model", dataset: str | None = None) -> Path:
    """The ``.keras`` file that `model` names: a shipped model's name (trained on `dataset`, when
    given), else a path to an existing ``.keras`` file. The one resolver of every function and
    command line that takes a model; its errors name the parameter (`role`): `FileNotFoundError`
    for a missing file, `ValueError` for anything else.

    >>> model_file("camvid-fcn8s").name
    'model.keras'
    >>> model_file("model.h5", role="checkpoint")
    Traceback (most recent call last):
    ...
    ValueError: checkpoint must be a .keras file saved by fcnseg.train or a shipped model (camvid-fcn8s), got 'model.h5'.
    """
    name = os.fspath(model) if isinstance(model, (str, os.PathLike)) else None
    if name in available_models():
        card = model_card(name) if dataset is not None else {"dataset": dataset}
        if card["dataset"] != dataset:
            raise ValueError(f"{role} {name!r} was trained on {card['dataset']}, the recipe is for {dataset}: "
                             f"use a recipe for {card['dataset']} (recipe={card['parameters']['recipe']!r}).")
        return MODELS_DIR / name / MODEL_FILE
    path = None if name is None else Path(name).expanduser()
    if path is None or path.suffix != ".keras":
        shipped = ", ".join(available_models()) or "none in this installation"
        raise ValueError(f"{role} must be a .keras file saved by fcnseg.train or a shipped model ({shipped}), "
                         f"got {model!r}.")
    if not path.is_file():
        raise FileNotFoundError(f"{role} {path} does not exist (a .keras file, or the name of a shipped model: "
                                f"{', '.join(available_models()) or 'none in this installation'}).")
    return path


def shipped_name(path) -> str | None:
    """The name of the shipped model whose file `path` is, else None.

    >>> shipped_name(model_file("camvid-fcn8s")), shipped_name("runs/x/best.keras")
    ('camvid-fcn8s', None)
    """
    path = Path(path).resolve()
    return path.parent.name if path.parent.parent == MODELS_DIR and path.name == MODEL_FILE else None


def model_card(name: str) -> dict:
    """What shipped model `name` expects and how it was made: its ``metrics.json`` (the training
    record: ``parameters``, ``encoder_weights``, the test scores) with its ``card`` (``classes``,
    ``colormap``, ``dataset``, ``input``, ``licence``, ...) merged in."""
    record = json.loads((model_file(name).parent / "metrics.json").read_text())
    return {**{k: v for k, v in record.items() if k != "card"}, **record["card"]}


def street_images() -> list[Path]:
    """The bundled street photos (`STREET_SAMPLE`), sorted.

    >>> [p.name for p in street_images()][:2]
    ['solidWhiteCurve.jpg', 'solidWhiteRight.jpg']
    """
    return sorted(p for p in STREET_SAMPLE.iterdir() if p.suffix == ".jpg")
