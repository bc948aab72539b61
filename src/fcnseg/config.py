"""The notebook's parameters (a named recipe, single-value overrides, where data and
results go), checked in one place: `check_params` fails at once with a clear
message when one cannot work, finds the data (`fcnseg.locate.find_data`) and
returns a `NotebookConfig` whose ``build_options``, ``data_options``,
``train_options`` and ``eval_options`` go to `build_fcn`, `make_dataset`,
`train` and `evaluate`. Where the recipe's data or encoder weights cannot be
had (offline, nothing downloaded yet), the config says why in one line and
points at a shipped model (`fcnseg.pretrained`) instead: the notebook then
shows it on the bundled street photos.

>>> check_params(overrides={"variant": "fcn64s"})
Traceback (most recent call last):
...
fcnseg.config.ParameterError: Unknown variant 'fcn64s': use one of 'fcn32s', 'fcn16s', 'fcn8s'.
"""

from __future__ import annotations

import dataclasses
import numbers
import os
from pathlib import Path

from fcnseg import recipes
from fcnseg.checks import flag, one_of, positive_int, size_hw
from fcnseg.datasets import DATASETS, SAMPLE_ROOT, available_splits, get_spec, read_split
from fcnseg.fcn import check_architecture, imagenet_weights_problem, resolve_backbone_weights
from fcnseg.locate import find_data, smoke_banner
from fcnseg.losses import make_loss
from fcnseg.predict import check_scales
from fcnseg.pretrained import available_models, model_card, model_file, shipped_name
from fcnseg.report import encoder_label
from fcnseg.training import make_optimizer

DEFAULT_RESULTS = "results"
# What quick mode (a smoke test of every cell) changes; overrides still win.
QUICK = {"image_size": (64, 64), "input_size": (64, 64), "epochs": 1, "fc_units": 64, "max_images": 4}
QUICK_STEPS = 2  # batches per epoch
TEST_TIME = ("input_size", "scales", "flip")
# What the notebook shows when the recipe cannot run here, and where those figures go.
OFFLINE_MODEL = "camvid-fcn8s"
OFFLINE_RESULTS = "street"


class ParameterError(ValueError):
    """A notebook parameter that cannot work, with what to use instead."""


@dataclasses.dataclass(frozen=True)
class NotebookConfig:
    """The notebook's parameters once checked and resolved (see `check_params`)."""

    recipe: str
    options: dict  # the recipe with quick mode and the overrides applied; encoder weights resolved
    data_root: Path | None  # None offline: no dataset, the checkpoint is shown on the street photos
    quick: bool
    checkpoint: Path | None
    results_dir: Path
    run_dir: Path | None  # where train() writes best.keras; None with a checkpoint
    download: bool
    eval_split: str
    steps: int | None  # batches per epoch (quick mode), None for all
    smoke_test: bool  # quick mode or the one-image sample: numbers mean nothing
    encoder: str  # the encoder weights in words, for captions and metrics.json
    notes: tuple[str, ...] = ()
    train_split: str = "train"
    val_split: str = "val"
    offline: str | None = None  # why the recipe cannot run here (then data_root is None)

    @property
    def has_data(self) -> bool:
        """Whether the dataset is here: False offline, where only the checkpoint's predictions are shown."""
        return self.data_root is not None

    def value(self, name: str):
        """The effective value of an option (an override, the recipe's, or the function's default)."""
        return recipes.value(self.options, name)

    @property
    def spec(self):
        """The `DatasetSpec` (classes, colormap) of the dataset."""
        return get_spec(self.value("dataset"))

    @property
    def dataset(self) -> str:
        return self.spec.name

    @property
    def build_options(self) -> dict:
        """Keyword arguments for `build_fcn` (as `train_options` for `train`)."""
        return {"num_classes": self.spec.num_classes, **recipes.options_for(self.options, "build_fcn")}

    @property
    def data_options(self) -> dict:
        """Keyword arguments for `make_dataset` (both splits; for training add ``augment=True``
        and ``class_weights=cfg.value("class_weights")``); a truncated (quick) dataset is never cached."""
        options = recipes.options_for(self.options, "make_dataset")
        return {"cache": not self.steps, "seed": self.value("seed"),
                **{k: v for k, v in options.items() if k != "class_weights"}}  # fmt: skip

    @property
    def train_options(self) -> dict:
        return recipes.options_for(self.options, "train")

    @property
    def predict_options(self) -> dict:
        """Keyword arguments for `predict_mask`: input size and test-time augmentation."""
        return {k: self.value(k) for k in TEST_TIME}

    @property
    def eval_options(self) -> dict:
        """Keyword arguments for `evaluate`, besides the model, root and split."""
        return {"dataset": self.spec, **recipes.options_for(self.options, "evaluate"), **self.predict_options}

    @property
    def model_name(self) -> str:
        name = self.value("variant").replace("fcn", "FCN-")
        return f"{name} ({self.value('decoder')} decoder)" if name == "FCN-32s" else name

    @property
    def checkpoint_name(self) -> str:
        """The checkpoint as a user names it: a shipped model's name, else its path."""
        return "" if self.checkpoint is None else shipped_name(self.checkpoint) or str(self.checkpoint)

    @property
    def test_time(self) -> str:
        """The test-time augmentation in words, "" for a single pass."""
        scales = tuple(self.value("scales"))
        parts = ["input scales " + ", ".join(map("{:g}".format, scales))] if scales != (1.0,) else []
        return " + ".join(parts + (["flip averaging"] if self.value("flip") else []))

    def caption(self, what: str, *, predicted: bool = False) -> str:
        """A figure title naming the model and its encoder weights (``predicted``: and the test-time augmentation)."""
        smoke = " [SMOKE TEST]" if self.smoke_test else ""
        tta = f" ({self.test_time})" if predicted and self.test_time else ""
        return f"{what}{tta}{smoke}\n{self.model_name} on {self.dataset}, encoder weights: {self.encoder}"

    @property
    def parameters(self) -> dict:
        """Everything this run used, for `fcnseg.report.write_metrics`."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("options", "encoder")}
        return {**self.options, **{k: self.value(k) for k in ("precision", "seed", *TEST_TIME)}, **fields}

    def describe(self) -> str:
        """A few lines saying what this run will do."""
        if self.offline:
            return (f"offline: {self.offline}; showing {self.model_name} {self.checkpoint_name} on the bundled "
                    f"street photos instead (figures in {self.results_dir})")
        size, steps = self.value("image_size"), f", {self.steps} step(s) per epoch" if self.steps else ""
        training = f"load {self.checkpoint} (no training)" if self.checkpoint else (
            f"recipe {self.recipe!r}: {self.value('epochs')} epoch(s) at {size[0]}x{size[1]}, batch "
            f"{self.value('batch_size')}, {self.value('loss')}, Adam {self.value('learning_rate'):g} "
            f"({self.value('schedule')}){steps} -> {self.run_dir}")  # fmt: skip
        first = self.value("max_images")
        evaluation = (f"{self.eval_split} at original resolution" + (f", {self.test_time}" if self.test_time else "")
                      + (f" (first {first} images)" if first else ""))  # fmt: skip
        return "\n".join([
            f"dataset     : {self.dataset} in {self.data_root}",
            f"model       : {self.model_name}, encoder weights {self.encoder}, {self.value('precision')}",
            f"training    : {training}",
            f"evaluation  : {evaluation}",
            f"results     : {self.results_dir}",
            *(f"note        : {n}" for n in self.notes),
        ])  # fmt: skip


def check_params(*, recipe: str = "reference", overrides=None, data_root=None, download: bool = True,
                 quick: bool = False, checkpoint=None, results_dir=DEFAULT_RESULTS,
                 verbose: bool = True) -> NotebookConfig:  # fmt: skip
    """Check the notebook's parameters and find the data; return a `NotebookConfig`.

    `recipe` names one of `fcnseg.recipes.RECIPES`; `overrides` (a dict) sets
    single values: any keyword of `build_fcn`, `make_dataset`, `train` or
    `evaluate` (``scales``, ``flip``, ``input_size``, ``max_images``), or
    ``precision``, ``seed``, ``eval_split``. All are checked before any file is
    touched (`ParameterError`, a `ValueError`, naming the bad one). On the
    one-image sample a banner says the run is a smoke test, whose results go to
    ``results/smoke_test`` when `results_dir` is the default. Quick mode applies
    `QUICK` and `QUICK_STEPS`. With a `checkpoint` (a ``.keras`` file, or a
    shipped model's name such as ``"camvid-fcn8s"``) nothing is trained.

    Outside quick mode, when the data cannot be found or downloaded, or the
    ImageNet encoder weights cannot be had, the config is *offline*: ``offline``
    says why, ``data_root`` is None, the checkpoint (by default the shipped
    `OFFLINE_MODEL`) is what the notebook shows, on the bundled street photos,
    and the figures go to ``results/street`` when `results_dir` is the default.
    """
    try:
        quick, download = flag("quick", quick), flag("download", download)
        if overrides is not None and not isinstance(overrides, dict):
            raise ValueError(f"overrides must be a dict such as {{'epochs': 20}}, got {overrides!r}.")
        options = _checked(recipes.recipe(recipe, **{**(QUICK if quick else {}), **(overrides or {})}))
        if not isinstance(results_dir, (str, os.PathLike)) or not str(results_dir):
            raise ValueError(f"results_dir must be a folder path, got {results_dir!r}.")
        if data_root is not None and not isinstance(data_root, (str, os.PathLike)):
            raise ValueError(f"data_root must be a folder path or None, got {data_root!r}.")
        checkpoint = _checkpoint(checkpoint, recipes.value(options, "dataset"))
    except ValueError as e:  # the notebook's own error type, with the check's message
        raise ParameterError(str(e)) from None
    notes = []

    spec = get_spec(recipes.value(options, "dataset"))
    eval_split = recipes.value(options, "eval_split") or spec.eval_split
    standard = ("train", "val", "test", "trainval")
    needed = ([] if checkpoint else ["train", "val"]) + ([eval_split] if eval_split in standard else [])
    try:
        root, smoke, why = find_data(spec, data_root, needed, quick=quick, download=download, verbose=verbose)
    except FileNotFoundError as e:
        if quick:
            raise
        return _offline(recipe, options, checkpoint, results_dir, str(e), verbose)
    fell_back = root == SAMPLE_ROOT.resolve() and (data_root is None or Path(data_root).expanduser().resolve() != root)
    problem = why if smoke and fell_back and not quick else None
    if problem is None and checkpoint is None and not quick and options["backbone_weights"] == "imagenet":
        problem = imagenet_weights_problem()
    if problem:
        return _offline(recipe, options, checkpoint, results_dir, problem, verbose)
    available = available_splits(root, spec)
    if eval_split not in available:
        raise ParameterError(f"eval_split={eval_split!r} is not a split of {root}: use one of {available}.")
    if quick:
        size = recipes.value(options, "image_size")
        notes.append(f"quick mode: {size[0]}x{size[1]} images, {recipes.value(options, 'epochs')} epoch of "
                     f"{QUICK_STEPS} batches, at most {recipes.value(options, 'max_images')} images scored, "
                     f"model input {'x'.join(map(str, recipes.value(options, 'input_size') or ('own size',)))}")  # fmt: skip
    n_train, batch = 0 if checkpoint else len(read_split(root, "train", spec)), recipes.value(options, "batch_size")
    if n_train and batch > n_train:
        if not smoke:
            raise ParameterError(f"batch_size={batch} is larger than the {n_train} training images of {root}.")
        notes.append(f"batch_size {batch} -> {n_train} (only {n_train} training image(s))")
        options["batch_size"] = n_train
    results_dir = Path(results_dir)
    if smoke and str(results_dir) == DEFAULT_RESULTS:
        results_dir = Path(DEFAULT_RESULTS) / "smoke_test"
        notes.append(f"smoke test: results go to {results_dir}, not {DEFAULT_RESULTS}/")
    run_dir = None if checkpoint else results_dir / "run" if smoke else recipes.run_dir(options)
    results_dir.mkdir(parents=True, exist_ok=True)

    cfg = NotebookConfig(
        recipe=recipe, options=options, data_root=root, quick=quick, checkpoint=checkpoint,
        results_dir=results_dir, run_dir=run_dir, download=download, eval_split=eval_split,
        steps=QUICK_STEPS if quick else None, smoke_test=smoke,
        encoder=encoder_label(recipes.value(options, "backbone_weights"), checkpoint), notes=tuple(notes),
    )  # fmt: skip
    if verbose:
        if smoke and root == SAMPLE_ROOT.resolve():
            print(smoke_banner(why))
        print(cfg.describe())
    return cfg


def _offline(recipe, options, checkpoint, results_dir, why: str, verbose: bool) -> NotebookConfig:
    """The config of a run whose recipe cannot run here (`why`): no dataset, no training; the
    checkpoint (by default the shipped `OFFLINE_MODEL`) is shown on the street photos."""
    if checkpoint is None:  # the shipped model, with its own recipe's classes, colours and captions
        checkpoint = model_file(OFFLINE_MODEL)
        shipped_recipe = model_card(OFFLINE_MODEL)["parameters"]["recipe"]
        options = recipes.recipe(shipped_recipe, precision=recipes.value(options, "precision"))
    results_dir = Path(results_dir)
    results_dir = results_dir / OFFLINE_RESULTS if str(results_dir) == DEFAULT_RESULTS else results_dir
    results_dir.mkdir(parents=True, exist_ok=True)
    cfg = NotebookConfig(
        recipe=recipe, options=options, data_root=None, quick=False, checkpoint=checkpoint, results_dir=results_dir,
        run_dir=None, download=False, eval_split=get_spec(recipes.value(options, "dataset")).eval_split, steps=None,
        smoke_test=False, encoder=encoder_label(None, checkpoint), offline=why.rstrip("."),
    )  # fmt: skip
    if verbose:
        print(cfg.describe())
    return cfg


def _checked(options: dict) -> dict:
    """The checks of the functions the options go to, run before anything else; returns
    the options with sizes and scales normalised and the encoder weights resolved."""
    value = lambda name: recipes.value(options, name)  # noqa: E731
    one_of("dataset", value("dataset"), tuple(DATASETS))
    check_architecture(value("variant"), value("decoder"))
    out = {**options, "image_size": size_hw("image_size", value("image_size"))}
    for name in ("epochs", "batch_size", *(["max_images"] if value("max_images") is not None else [])):
        positive_int(name, value(name))
    make_loss(value("loss"))
    make_optimizer(value("learning_rate"), schedule=value("schedule"), decay_steps=1)
    one_of("precision", value("precision"), recipes.PRECISIONS)
    flag("flip", value("flip"))
    out["input_size"] = None if value("input_size") is None else size_hw("input_size", value("input_size"))
    out["scales"] = check_scales(value("scales"))
    if isinstance(value("seed"), bool) or not isinstance(value("seed"), numbers.Integral):
        raise ValueError(f"seed must be an integer, got {value('seed')!r}.")
    if value("eval_split") is not None and (not isinstance(value("eval_split"), str) or not value("eval_split")):
        raise ValueError(f"eval_split must be a split name such as 'val' or None, got {value('eval_split')!r}.")
    try:
        out["backbone_weights"] = resolve_backbone_weights(value("backbone_weights"))
    except FileNotFoundError as e:  # the message names FCN_BACKBONE_WEIGHTS when the path came from there
        raise ValueError(f"backbone_weights: {e}.") from None
    return out


def _checkpoint(checkpoint, dataset: str) -> Path | None:
    """The checkpoint's file: a ``.keras`` path or a shipped model's name (trained on `dataset`)."""
    if checkpoint is None:
        return None
    if isinstance(checkpoint, str) and checkpoint in available_models():
        trained_on = model_card(checkpoint)["dataset"]
        if trained_on != dataset:
            raise ValueError(f"checkpoint {checkpoint!r} was trained on {trained_on}, the recipe is for {dataset}: "
                             f"use a recipe for {trained_on} (recipe={model_card(checkpoint)['parameters']['recipe']!r}).")
        return model_file(checkpoint)
    path = Path(checkpoint).expanduser() if isinstance(checkpoint, (str, os.PathLike)) else None
    if path is None or path.suffix != ".keras":
        raise ValueError(f"checkpoint must be a .keras file saved by fcnseg.train, a shipped model "
                         f"({', '.join(available_models())}) or None, got {checkpoint!r}.")
    if not path.is_file():
        raise ValueError(f"checkpoint {path} does not exist (leave checkpoint=None to train).")
    return path


