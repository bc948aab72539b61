"""Named training recipes, each defined once, and single-value overrides.

A recipe sets some of the `fcnseg.options.Options` of a run; an option it does
not set keeps the default declared there. A recipe may have a second stage
(`SECOND_STAGES`): the options it changes, trained from the best epoch of the
first. `recipe` applies overrides and checks every value, without TensorFlow
(``--help`` stays fast); `stages` gives the options of every stage.

>>> recipe("camvid", epochs=40).epochs
40
>>> [(o.epochs, o.learning_rate, o.seed) for o in stages("camvid")]
[(17, 0.0001, 0), (24, 5e-05, 1)]
>>> recipe("camvid").step("build_fcn")["skip_scales"]
(1.0, 1.0)
>>> recipe("camvid", fc_unit=64)
Traceback (most recent call last):
...
ValueError: Unknown option 'fc_unit' (e.g. 'fc_units'): use one of the fields of fcnseg.options.Options.
"""

from __future__ import annotations

from pathlib import Path

from fcnseg.options import Options

DEFAULT = "voc2007"  # what the notebook, fcnseg-train and plan_run train when no recipe is named
RECIPES = {
    # The seed notebook (PASCAL VOC 2007): FCN-32s with its BatchNorm decoder, 1x1 fc6/fc7 of
    # 4096 units, BCE, 256x256 crops without scale jitter (flips only), Adam 1e-3 halved on plateaus.
    "reference": {
        "dataset": "voc2007", "variant": "fcn32s", "decoder": "notebook", "loss": "bce",
        "image_size": (256, 256), "scale_range": (1.0, 1.0), "batch_size": 8,
        "learning_rate": 1e-3, "schedule": "plateau", "epochs": 10,
    },
    # CamVid (docs/experiments.md), stage 1: FCN-8s from the encoder with unscaled skips,
    # native-size 360x480 crops with scale and colour jitter, square-root median-frequency class
    # weights, Adam 1e-4 with polynomial decay over 17 epochs (about 2 hours on a 2-core AMD EPYC
    # with AVX-512 BF16); stage 2 in SECOND_STAGES.
    "camvid": {
        "dataset": "camvid", "variant": "fcn8s", "decoder": "bilinear", "skip_scales": (1.0, 1.0),
        "image_size": (360, 480), "scale_range": (0.75, 1.5),
        "color_jitter": 0.3, "class_weights": "sqrt_median", "batch_size": 8, "loss": "sparse_ce",
        "learning_rate": 1e-4, "schedule": "poly", "epochs": 17,
    },
    # PASCAL VOC 2007 (docs/experiments.md): what CamVid taught (FCN-8s with unscaled skips, scale and
    # colour jitter, square-root median-frequency class weights, Adam 1e-4 with polynomial decay) on
    # 320x320 crops of the 209 train images, scale 0.5-1.5; chosen and scored on val.
    "voc2007": {
        "dataset": "voc2007", "variant": "fcn8s", "decoder": "bilinear", "skip_scales": (1.0, 1.0),
        "image_size": (320, 320), "scale_range": (0.5, 1.5), "color_jitter": 0.3,
        "class_weights": "sqrt_median", "batch_size": 8, "loss": "sparse_ce",
        "learning_rate": 1e-4, "schedule": "poly", "epochs": 40,
    },
}  # fmt: skip

# What the second stage of a recipe changes. It trains from the first stage's best epoch (the first
# stage trains into <run>/stage1, the second into <run>); only training options may change, the
# model is the first stage's.
FIRST_STAGE_DIR = "stage1"  # a two-stage run's first stage, inside its run folder
# A run folder's training logs, first stage first (those that exist).
HISTORIES = (f"{FIRST_STAGE_DIR}/history.csv", "history.csv")
SECOND_STAGES = {
    # CamVid: the same data and augmentation, Adam restarted at half the rate and decayed over 24 more
    # epochs (about 3 hours on the CPU above), a new seed for the order and jitter of the crops.
    "camvid": {"learning_rate": 5e-5, "epochs": 24, "seed": 1},
}  # fmt: skip


def recipe(name: str = DEFAULT, **overrides) -> Options:
    """The `Options` of recipe `name` (of its first stage, where it has two: see `stages`)
    with `overrides` applied, every value checked (`ValueError` for an unknown recipe,
    option or value)."""
    if name not in RECIPES:
        raise ValueError(f"Unknown recipe {name!r}: use one of {', '.join(map(repr, RECIPES))}.")
    return Options.from_dict({**RECIPES[name], **overrides})


def stages(name: str = DEFAULT, **overrides) -> tuple[Options, ...]:
    """The `Options` of each stage of recipe `name`: one, or two where the recipe has a
    second stage (`SECOND_STAGES`). `overrides` apply to every stage.

    >>> [o.epochs for o in stages("camvid", epochs=2)], len(stages("reference"))
    ([2, 2], 1)
    """
    first = recipe(name, **overrides)
    if name not in SECOND_STAGES:
        return (first,)
    return first, Options.from_dict({**RECIPES[name], **SECOND_STAGES[name], **overrides})


def run_dir(options: Options) -> Path:
    """The default run folder of a recipe's options: ``runs/<dataset>_<model>``.

    >>> run_dir(recipe("camvid")).as_posix(), run_dir(recipe("reference")).as_posix()
    ('runs/camvid_fcn8s', 'runs/voc2007_fcn32s_notebook')
    """
    variant, dataset = options.variant, getattr(options.dataset, "name", options.dataset)
    suffix = f"_{options.decoder}" if variant == "fcn32s" and options.decoder != "bilinear" else ""
    return Path("runs") / f"{dataset}_{variant}{suffix}"


def describe(name: str) -> str:
    """A recipe in one line, for ``--help`` and the notebook.

    >>> describe("reference")[:60]
    'reference: dataset=voc2007 variant=fcn32s decoder=notebook l'
    """
    values = " ".join(f"{k}={_text(v)}" for k, v in RECIPES[name].items())
    second = " ".join(f"{k}={_text(v)}" for k, v in SECOND_STAGES.get(name, {}).items())
    return f"{name}: {values}" + (f"; then, from its best epoch: {second}" if second else "")


def _text(v) -> str:
    return ",".join(map(str, v)) if isinstance(v, tuple) else str(v)
