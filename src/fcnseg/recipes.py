"""Named training recipes, each defined once, and single-value overrides.

A recipe is a flat dict of keyword arguments of `build_fcn`, `make_dataset`,
`train` and `evaluate` (plus ``dataset``). `recipe` merges overrides into it,
and `options_for` hands each of those functions its own share, so any keyword
they take overrides a recipe value: a new `build_fcn` option needs no change
here, in the command line or in the notebook. A value a recipe does not set is
the function's own default. This module reads the functions' signatures from
their source, so it works without importing TensorFlow (``--help`` stays fast).

>>> recipe("camvid", epochs=40)["epochs"]
40
>>> options_for(recipe("camvid"), "build_fcn")["skip_scales"]
(1.0, 1.0)
>>> recipe("camvid", fc_unit=64)
Traceback (most recent call last):
...
ValueError: Unknown option 'fc_unit': use a keyword of build_fcn, make_dataset, train or evaluate (e.g. 'fc_units').
"""

from __future__ import annotations

import ast
import difflib
import functools
import importlib.util
from pathlib import Path

RECIPES = {
    # The seed notebook (PASCAL VOC 2007): FCN-32s with its BatchNorm decoder, 1x1 fc6/fc7 of
    # 4096 units, BCE, 256x256 crops without scale jitter (flips only), Adam 1e-3 halved on plateaus.
    "reference": {
        "dataset": "voc2007", "variant": "fcn32s", "decoder": "notebook", "loss": "bce",
        "image_size": (256, 256), "scale_range": (1.0, 1.0), "batch_size": 8,
        "learning_rate": 1e-3, "schedule": "plateau", "epochs": 10,
    },
    # CamVid (docs/experiments.md): FCN-8s from the encoder with unscaled skips, native-size
    # 360x480 crops with scale and colour jitter, square-root median-frequency class weights,
    # Adam 1e-4 with polynomial decay over 17 epochs (about 2 hours on a 2-core AVX-512 BF16 CPU).
    "camvid": {
        "dataset": "camvid", "variant": "fcn8s", "decoder": "bilinear", "skip_scales": (1.0, 1.0),
        "image_size": (360, 480), "scale_range": (0.75, 1.5),
        "color_jitter": 0.3, "class_weights": "sqrt_median", "batch_size": 8, "loss": "sparse_ce",
        "learning_rate": 1e-4, "schedule": "poly", "epochs": 17,
    },
}  # fmt: skip
# Settings of a run beside its recipe (overridable the same way), with their defaults.
RUN_DEFAULTS = {"precision": "auto", "seed": 0, "eval_split": None}  # eval_split None: the dataset's own
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
# The functions a recipe feeds; an option goes to the first one that takes it.
TARGETS = {"build_fcn": "fcnseg.fcn", "make_dataset": "fcnseg.pipeline", "train": "fcnseg.training",
           "evaluate": "fcnseg.evaluation"}  # fmt: skip
# Set by whoever runs a recipe (data location, run folder, what is built), never by a recipe.
# ``one_hot`` too: the package trains on sparse labels.
RESERVED = frozenset({"model", "num_classes", "root", "split", "augment", "shuffle", "one_hot", "train_ds",
                      "val_ds", "checkpoint_dir", "strategy", "callbacks", "verbose"})  # fmt: skip


@functools.cache
def signature(function: str) -> dict:
    """``{name: default}`` of one of `TARGETS`, read from its source (no import);
    a default that is not a literal (or none) reads as None.

    >>> signature("build_fcn")["variant"]
    'fcn32s'
    """
    source = Path(importlib.util.find_spec(TARGETS[function]).origin).read_text()
    node = next(n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef) and n.name == function)
    args = node.args
    positional = [*args.posonlyargs, *args.args]
    defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    pairs = [*zip(positional, defaults), *zip(args.kwonlyargs, args.kw_defaults)]
    return {arg.arg: _literal(default) for arg, default in pairs}


def _literal(node):
    try:
        return None if node is None else ast.literal_eval(node)
    except ValueError:
        return None


def option_names() -> list[str]:
    """Every option a recipe or an override may set."""
    return sorted({*RUN_DEFAULTS, *(name for f in TARGETS for name in signature(f))} - RESERVED)


def recipe(name: str = "reference", **overrides) -> dict:
    """The options of recipe `name` with `overrides` applied; `ValueError` for an unknown name or option."""
    if name not in RECIPES:
        raise ValueError(f"Unknown recipe {name!r}: use one of {', '.join(map(repr, RECIPES))}.")
    known = option_names()
    for option in overrides:
        if option not in known:
            close = difflib.get_close_matches(option, known, n=1)
            hint = f" (e.g. {close[0]!r})" if close else ""
            raise ValueError(f"Unknown option {option!r}: use a keyword of {', '.join(list(TARGETS)[:-1])} "
                             f"or {list(TARGETS)[-1]}{hint}.")  # fmt: skip
    return {**RECIPES[name], **overrides}


def options_for(options: dict, function: str) -> dict:
    """The share of `options` that goes to `function` (one of `TARGETS`): the options it
    takes that no earlier target takes (``batch_size`` is `make_dataset`'s, not `evaluate`'s)."""
    earlier = {n for f in list(TARGETS)[: list(TARGETS).index(function)] for n in signature(f)}
    return {k: v for k, v in options.items() if k in signature(function) and k not in earlier}


def value(options: dict, name: str):
    """The effective value of option `name`: from `options`, else its function's default."""
    if name in options:
        return options[name]
    if name in RUN_DEFAULTS:
        return RUN_DEFAULTS[name]
    return next(signature(f)[name] for f in TARGETS if name in signature(f))


def run_dir(options: dict) -> Path:
    """The default run folder of a recipe's options: ``runs/<dataset>_<model>``.

    >>> run_dir(recipe("camvid")).as_posix(), run_dir(recipe("reference")).as_posix()
    ('runs/camvid_fcn8s', 'runs/voc2007_fcn32s_notebook')
    """
    variant, dataset = value(options, "variant"), value(options, "dataset")
    suffix = f"_{value(options, 'decoder')}" if variant == "fcn32s" and value(options, "decoder") != "bilinear" else ""
    return Path("runs") / f"{getattr(dataset, 'name', dataset)}_{variant}{suffix}"


def describe(name: str) -> str:
    """A recipe in one line, for ``--help`` and the notebook.

    >>> describe("reference")[:60]
    'reference: dataset=voc2007 variant=fcn32s decoder=notebook l'
    """
    values = " ".join(f"{k}={_text(v)}" for k, v in RECIPES[name].items())
    return f"{name}: {values}"


def _text(v) -> str:
    return ",".join(map(str, v)) if isinstance(v, tuple) else str(v)
