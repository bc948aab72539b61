"""One training run, from a recipe and its overrides to ``metrics.json``: the path
that ``fcnseg-train`` and the notebook both take.

`plan_run` checks every option and setting at once (`ParameterError` naming the
bad one), finds the data (`fcnseg.datasets.find_data.find_data`), and resolves the encoder
weights, the splits and the encoder's label; the `RunPlan` it returns does each
step: `RunPlan.datasets`, `~RunPlan.build_model`, `~RunPlan.train`,
`~RunPlan.evaluate` and `~RunPlan.write_metrics`. The notebook calls them cell
by cell; `run` calls them in a row. A two-stage recipe (`fcnseg.recipes.stages`)
is one plan: its `~RunPlan.train` trains the first stage into ``run_dir/stage1``,
then the second from its best epoch into ``run_dir``. Where the recipe's data or encoder weights
cannot be had (offline, nothing downloaded yet), the plan is *offline*: it says
why in one line and points at a shipped model (`fcnseg.models.pretrained`), which the
notebook shows on the bundled street photos.

>>> plan = plan_run(recipe="camvid", overrides={"epochs": 40}, data_root="data/camvid")  # doctest: +SKIP
>>> metrics = run(recipe="camvid", run_dir="runs/camvid_fcn8s", results_dir="runs/camvid_fcn8s")  # doctest: +SKIP
>>> plan_run(overrides={"variant": "fcn64s"})
Traceback (most recent call last):
...
fcnseg.options.ParameterError: Unknown variant 'fcn64s': use one of 'fcn32s', 'fcn16s', 'fcn8s'.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from fcnseg import recipes
from fcnseg.checks import STRATEGIES, flag, one_of
from fcnseg.datasets import FOLDER_DATASET, available_splits, get_spec, read_split
from fcnseg.models.fcn import imagenet_weights_problem, resolve_backbone_weights
from fcnseg.datasets.find_data import find_data, smoke_banner
from fcnseg.options import TEST_TIME, Options, ParameterError
from fcnseg.models.pretrained import model_card, model_file, shipped_name
from fcnseg.training.record import encoder_label, logged_epochs

DEFAULT_RESULTS = "results"
# What quick mode (a smoke test of every step) changes; overrides still win.
QUICK = {"image_size": (64, 64), "input_size": (64, 64), "epochs": 1, "fc_units": 64, "max_images": 4}
QUICK_STEPS = 2  # batches per epoch
STANDARD_SPLITS = ("train", "val", "test", "trainval")  # the ones a VOC download can bring
# What an offline plan shows (on the bundled street photos), and where those figures go.
OFFLINE_MODEL = "camvid-fcn8s"
OFFLINE_RESULTS = "street"


@dataclasses.dataclass(frozen=True)
class RunPlan:
    """A run's options and settings once checked and resolved (see `plan_run`), and its steps."""

    recipe: str
    options: Options  # the recipe with quick mode and the overrides applied; encoder weights resolved
    data_root: Path | None  # None offline: no dataset, the checkpoint is shown on the street photos
    quick: bool
    checkpoint: Path | None  # a trained model to score: nothing is trained
    init_from: Path | None  # a trained model to train further
    results_dir: Path  # metrics.json and figures
    run_dir: Path | None  # where training writes best.keras; None with a checkpoint
    download: bool
    eval_split: str
    steps: int | None  # batches per epoch (quick mode), None for all
    smoke_test: bool  # quick mode or the one-image sample: numbers mean nothing
    encoder: str  # the encoder weights in words, for captions and metrics.json
    strategy: str = "none"
    notes: tuple[str, ...] = ()
    offline: str | None = None  # why the recipe cannot run here (then data_root is None)
    first_stage: Options | None = None  # a two-stage recipe's first stage; `options` are its second
    data_note: str | None = None  # where the data came from, said under every figure and in metrics.json

    @property
    def first(self) -> RunPlan | None:
        """The plan of a two-stage recipe's first stage (into ``run_dir/stage1``), else None."""
        if self.first_stage is None:
            return None
        return dataclasses.replace(self, options=self.first_stage, first_stage=None, run_dir=self.run_dir / recipes.FIRST_STAGE_DIR)

    @property
    def finished(self) -> bool:
        """Whether ``run_dir`` holds a best checkpoint and the history of all the epochs (of this stage)."""
        history = self.run_dir / "history.csv"
        if not (self.run_dir / "best.keras").is_file() or not history.is_file():
            return False
        return len(logged_epochs(history)) >= self.options.epochs

    @property
    def history_files(self) -> list[Path]:
        """The ``history.csv`` files of the training (first stage first), for `plot_history`;
        with a checkpoint, those beside it."""
        folder = self.run_dir or self.checkpoint.parent
        return [folder / f for f in recipes.HISTORIES if (folder / f).is_file()]

    @property
    def has_data(self) -> bool:
        """Whether the dataset is here: False offline, where only the checkpoint's predictions are shown."""
        return self.data_root is not None

    @property
    def checkpoint_name(self) -> str:
        """The checkpoint as a user names it: a shipped model's name, else its path."""
        return "" if self.checkpoint is None else shipped_name(self.checkpoint) or str(self.checkpoint)

    @property
    def spec(self):
        """The `DatasetSpec` (classes, colormap) of the dataset."""
        return get_spec(self.options.dataset)

    @property
    def dataset(self) -> str:
        return self.spec.name

    @property
    def predict_options(self) -> dict:
        """Keyword arguments for `predict_mask`: input size and test-time augmentation."""
        return {name: getattr(self.options, name) for name in TEST_TIME}

    # ------------------------------------------------------------------ the steps

    def datasets(self):
        """``(train_ds, val_ds)`` from `make_dataset`: the training split augmented and with
        the class weights, the validation split plain; cut to `steps` batches in quick mode
        (and then not cached)."""
        from fcnseg.datasets.pipeline import make_dataset

        data = {"dataset": self.spec, "cache": not self.steps, "seed": self.options.seed,
                **self.options.step("make_dataset")}  # fmt: skip
        train_ds = make_dataset(self.data_root, self.options.train_split, augment=True, **data)
        val_ds = make_dataset(self.data_root, self.options.val_split, **{**data, "class_weights": None})
        if self.steps:
            train_ds, val_ds = train_ds.take(self.steps), val_ds.take(self.steps)
        return train_ds, val_ds

    def build_model(self):
        """Set the seed (of the first stage) and the precision policy, then build the model
        (`build_fcn`), or load the checkpoint or `init_from` model to run at that policy
        (`init_from` with new class layers when the dataset has another number of classes)."""
        import keras

        from fcnseg.models.fcn import build_fcn, load_fcn
        from fcnseg.models.precision import set_precision

        keras.utils.set_random_seed((self.first_stage or self.options).seed)
        precision = set_precision(self.options.precision)
        if self.checkpoint:
            return load_fcn(self.checkpoint, precision=precision)
        if self.init_from:
            return load_fcn(self.init_from, precision=precision, num_classes=self.spec.num_classes)
        return build_fcn(num_classes=self.spec.num_classes, **self.options.step("build_fcn"))

    def train(self, model, train_ds, val_ds, *, strategy=None, verbose=2) -> float | None:
        """Train `model` (under a `strategy`: a function that builds it, such as
        `build_model`) into `run_dir` with `fcnseg.training.loop.train`. A two-stage recipe first
        trains `model` into ``run_dir/stage1`` (unless that stage is `finished`), then this plan's
        datasets from the first stage's best epoch. Returns the training time in seconds: that of
        every epoch in `history_files`, so a run resumed across processes counts all of them (None
        on a multi-worker run's other workers, which log no epochs)."""
        from fcnseg.training.distribute import is_chief
        from fcnseg.training.loop import train

        first = self.first
        if first is not None:
            if not first.finished:
                first.train(model, *first.datasets(), strategy=strategy, verbose=verbose)
            model = dataclasses.replace(self, init_from=first.run_dir / "best.keras", first_stage=None).build_model
        train(model, train_ds, val_ds, checkpoint_dir=self.run_dir, strategy=strategy, verbose=verbose,
              **self.options.step("train"))  # fmt: skip
        if not is_chief(strategy):
            return None
        return round(sum(float(row["epoch_seconds"]) for f in self.history_files for row in logged_epochs(f)), 1)

    def trained_model(self):
        """The model to score: the checkpoint, else the best epoch of the training (``run_dir/best.keras``)."""
        from fcnseg.models.fcn import load_fcn

        return load_fcn(self.checkpoint or self.run_dir / "best.keras")

    def evaluate(self, model) -> dict:
        """`fcnseg.inference.evaluation.evaluate` of `model` on the evaluation split, with the evaluation options."""
        from fcnseg.inference.evaluation import evaluate

        return evaluate(model, self.data_root, self.eval_split, dataset=self.spec, **self.options.step("evaluate"))

    def write_metrics(self, scores: dict, **extra) -> dict:
        """``results_dir/metrics.json`` (`fcnseg.training.record.write_metrics`) with this run's parameters."""
        from fcnseg.training.record import write_metrics

        return write_metrics(self.results_dir / "metrics.json", scores, parameters=self.parameters,
                             encoder=self.encoder, run_dir=self.run_dir, smoke_test=self.smoke_test,
                             **extra)  # fmt: skip

    # ------------------------------------------------------------------ in words

    @property
    def parameters(self) -> dict:
        """Everything this run used (the precision policy resolved), for ``metrics.json``."""
        from fcnseg.models.precision import resolve_precision

        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("options", "encoder")}
        if self.first_stage is not None:  # what the first stage did otherwise
            second = self.options.as_dict()
            fields["first_stage"] = {k: v for k, v in self.first_stage.as_dict().items() if v != second[k]}
        return {**self.options.as_dict(), **fields, "precision": resolve_precision(self.options.precision)}

    @property
    def model_name(self) -> str:
        name = self.options.variant.replace("fcn", "FCN-")
        return f"{name} ({self.options.decoder} decoder)" if name == "FCN-32s" else name

    @property
    def test_time(self) -> str:
        """The test-time augmentation in words, "" for a single pass."""
        scales = self.options.scales
        parts = ["input scales " + ", ".join(map("{:g}".format, scales))] if scales != (1.0,) else []
        return " + ".join(parts + (["flip averaging"] if self.options.flip else []))

    def _training_text(self) -> str:
        o, steps = self.options, f", {self.steps} step(s) per epoch" if self.steps else ""
        return (f"{o.epochs} epoch(s) at {o.image_size[0]}x{o.image_size[1]}, batch {o.batch_size}, {o.loss}, "
                f"Adam {o.learning_rate:g} ({o.schedule}){steps} -> {self.run_dir}")  # fmt: skip

    def caption(self, what: str, *, predicted: bool = False) -> str:
        """A figure title naming the model and its encoder weights (``predicted``: and the test-time augmentation)."""
        smoke = " [SMOKE TEST]" if self.smoke_test else ""
        tta = f" ({self.test_time})" if predicted and self.test_time else ""
        note = f"\n{self.data_note}" if self.data_note else ""
        return f"{what}{tta}{smoke}\n{self.model_name} on {self.dataset}, encoder weights: {self.encoder}{note}"

    def describe(self) -> str:
        """A few lines saying what this run will do (offline: one line, why and what instead)."""
        if self.offline:
            return (f"offline: {self.offline}; showing {self.model_name} {self.checkpoint_name} on the bundled "
                    f"street photos instead (figures in {self.results_dir})")
        o = self.options
        if self.checkpoint:
            training = f"load {self.checkpoint} (no training)"
        else:
            training = f"recipe {self.recipe!r}: " + "; then, from its best epoch, ".join(
                plan._training_text() for plan in (self.first, self) if plan is not None)
        evaluation = (f"{self.eval_split} at original resolution" + (f", {self.test_time}" if self.test_time else "")
                      + (f" (first {o.max_images} images)" if o.max_images else ""))  # fmt: skip
        return "\n".join([
            f"dataset     : {self.dataset} in {self.data_root}",
            f"model       : {self.model_name}, encoder weights {self.encoder}, {o.precision}",
            f"training    : {training}",
            f"evaluation  : {evaluation}",
            f"results     : {self.results_dir}",
            *(f"note        : {n}" for n in self.notes),
        ])  # fmt: skip


def plan_run(*, recipe: str = recipes.DEFAULT, overrides=None, data_root=None, download: bool = True,
             quick: bool = False, checkpoint=None, results_dir=DEFAULT_RESULTS, run_dir=None, init_from=None,
             strategy: str = "none", offline_fallback: bool = False, data_note: str | None = None,
             verbose: bool = True) -> RunPlan:  # fmt: skip
    """Check a run's options and settings and find the data; return a `RunPlan`.

    `recipe` names one of `fcnseg.recipes.RECIPES`; `overrides` (a dict) sets single options
    (`fcnseg.options.Options`; your own data: ``{"dataset": "folder", "classes": [...],
    "mask_values": {0: 0, 255: 1}}`` with `data_root` its folder, or ``{"dataset": folder_dataset(...)}``).
    All are checked before any file is touched (`ParameterError`, a `ValueError`, naming the bad
    one). Without `data_root` the dataset's variable (e.g. ``VOC_ROOT``) or ``data/`` is used; a
    missing VOC 2007 is downloaded (`download`) or, in quick mode (`QUICK`, `QUICK_STEPS`), replaced by
    the one-image sample, whose results go to ``results/smoke_test`` when `results_dir` is the default
    (None: the run folder, as ``fcnseg-train`` does).
    With a `checkpoint` (a ``.keras`` file or a shipped model's name such as ``"camvid-fcn8s"``)
    nothing is trained; with `init_from` (the same kinds) training starts from that model, its class
    layers re-made for another number of classes. `run_dir` (default: `fcnseg.recipes.run_dir`) gets
    ``best.keras``; `strategy` is one of `fcnseg.checks.STRATEGIES`; `data_note` (one line, e.g. where
    the images came from) goes under every figure's title and into ``metrics.json``.

    With `offline_fallback` (the notebook's; `run` and ``fcnseg-train`` raise instead), outside quick
    mode, when the data or the ImageNet encoder weights cannot be had, the plan is *offline*: it says
    why, and the checkpoint (by default `OFFLINE_MODEL`) is shown on the bundled street photos, its
    figures in ``results/street`` when `results_dir` is the default.

    >>> from fcnseg.datasets import SAMPLE_ROOT
    >>> plan = plan_run(data_root=SAMPLE_ROOT, quick=True, results_dir="results", verbose=False)
    >>> plan.smoke_test, plan.options.epochs, plan.eval_split
    (True, 1, 'val')
    """
    try:
        flag("quick", quick), flag("download", download), one_of("strategy", strategy, STRATEGIES)
        _check_places(data_note, results_dir, data_root, run_dir)
        *earlier, options = _recipe_options(recipe, overrides, quick, data_root)
        checkpoint = None if checkpoint is None else model_file(checkpoint, role="checkpoint",
                                                                 dataset=options.spec().name)  # fmt: skip
        init_from = None if init_from is None else model_file(init_from, role="init_from")
    except (ValueError, FileNotFoundError) as e:  # the run's own error type, with the check's message
        raise ParameterError(str(e)) from None
    spec, trained = options.spec(), [] if checkpoint else [options.train_split, options.val_split]
    eval_split = options.eval_split or spec.eval_split
    needed = [s for s in (*trained, eval_split) if s in STANDARD_SPLITS or s in trained]
    needs_encoder = options.encoder if checkpoint is None and options.backbone_weights == "imagenet" else None
    found = _data(spec, data_root, needed, quick=quick, download=download, verbose=verbose,
                  offline_fallback=offline_fallback, needs_encoder=needs_encoder)  # fmt: skip
    if isinstance(found, str):
        return _offline(recipe, options, checkpoint, results_dir, found, verbose)
    root, smoke, why = found
    options, notes = _fitted(options, root, eval_split, quick, smoke, checkpoint)
    results_dir, run_dir = _folders(options, results_dir, run_dir, smoke, checkpoint, notes)
    first_stage = _first_stage(recipe, earlier, options) if earlier and not checkpoint else None
    plan = RunPlan(recipe=recipe, options=options, data_root=root, quick=quick, checkpoint=checkpoint,
                   init_from=init_from, results_dir=results_dir, run_dir=run_dir, download=download,
                   eval_split=eval_split, steps=QUICK_STEPS if quick else None, smoke_test=smoke, strategy=strategy,
                   encoder=encoder_label(options.backbone_weights, checkpoint or init_from, options.encoder),
                   notes=tuple(notes), first_stage=first_stage, data_note=data_note)  # fmt: skip
    if verbose:  # a loud banner over a run on the bundled sample
        print(*([smoke_banner(spec, why)] if smoke and _on_sample(spec, root) else []), plan.describe(), sep="\n")
    return plan


def _first_stage(recipe: str, earlier: list[Options], options: Options) -> Options:
    """A two-stage recipe's first stage: the second stage's `options`, but for those the second stage changes."""
    return dataclasses.replace(options, **{k: getattr(earlier[0], k) for k in recipes.SECOND_STAGES[recipe]})


def _data(spec, data_root, needed, *, quick, download, verbose, offline_fallback, needs_encoder):
    """`find_data`'s ``(root, smoke_test, why)``; with `offline_fallback` outside quick mode, why the run
    must be offline instead (a string): no usable data, only the sample, or no ImageNet weights for the
    encoder named by `needs_encoder` (None: none needed)."""
    try:
        root, smoke, why = find_data(spec, data_root, needed, quick=quick, download=download, verbose=verbose)
    except FileNotFoundError as e:
        if quick or not offline_fallback:
            raise
        return str(e)
    if not offline_fallback or quick:
        return root, smoke, why
    fell_back = _on_sample(spec, root) and (data_root is None or Path(data_root).expanduser().resolve() != root)
    if smoke and fell_back:
        return why
    return (needs_encoder and imagenet_weights_problem(needs_encoder)) or (root, smoke, why)


def _on_sample(spec, root: Path) -> bool:
    return spec.sample_root is not None and root == spec.sample_root.resolve()


def _recipe_options(recipe: str, overrides, quick: bool, data_root) -> list[Options]:
    """The options of each stage of `recipe` with quick mode and `overrides` applied, your own data's
    classes read (from the options or ``data_root/classes.txt``) and the encoder weights resolved."""
    if overrides is not None and not isinstance(overrides, dict):
        raise ValueError(f"overrides must be a dict such as {{'epochs': 20}}, got {overrides!r}.")
    *earlier, options = recipes.stages(recipe, **{**(QUICK if quick else {}), **(overrides or {})})
    if options.dataset == FOLDER_DATASET:
        options = dataclasses.replace(options, dataset=options.spec(data_root))
    try:
        options = dataclasses.replace(options, backbone_weights=resolve_backbone_weights(
            options.backbone_weights, options.encoder))
    except FileNotFoundError as e:  # the message names FCN_BACKBONE_WEIGHTS when the path came from there
        raise ValueError(f"backbone_weights: {e}.") from None
    return [*earlier, options]


def _check_places(data_note, results_dir, data_root, run_dir) -> None:
    """`ValueError` unless `data_note` is a line of text or None and the folders are paths (or None)."""
    if data_note is not None and not (isinstance(data_note, str) and data_note.strip()):
        raise ValueError(f"data_note must be a line of text or None, got {data_note!r}.")
    if results_dir is not None and (not isinstance(results_dir, (str, os.PathLike)) or not str(results_dir)):
        raise ValueError(f"results_dir must be a folder path or None (the run folder), got {results_dir!r}.")
    for name, value in (("data_root", data_root), ("run_dir", run_dir)):
        if value is not None and not isinstance(value, (str, os.PathLike)):
            raise ValueError(f"{name} must be a folder path or None, got {value!r}.")


def _fitted(options: Options, root: Path, eval_split: str, quick: bool, smoke: bool,
            checkpoint) -> tuple[Options, list[str]]:  # fmt: skip
    """`options` fitted to the data at `root` (which must have `eval_split`; a batch no larger than a
    smoke test's training images), and notes saying what quick mode and the fitting changed."""
    available = available_splits(root, options.spec())
    if eval_split not in available:
        raise ParameterError(f"eval_split={eval_split!r} is not a split of {root}: use one of {available}.")
    notes = []
    if quick:
        size = options.image_size
        notes.append(f"quick mode: {size[0]}x{size[1]} images, {options.epochs} epoch of {QUICK_STEPS} batches, "
                     f"at most {options.max_images} images scored, model input "
                     f"{'x'.join(map(str, options.input_size or ('own size',)))}")  # fmt: skip
    n_train = 0 if checkpoint else len(read_split(root, options.train_split, options.spec()))
    if n_train and options.batch_size > n_train:
        if not smoke:
            raise ParameterError(f"batch_size={options.batch_size} is larger than the {n_train} training images of "
                                 f"{root}.")  # fmt: skip
        notes.append(f"batch_size {options.batch_size} -> {n_train} (only {n_train} training image(s))")
        options = dataclasses.replace(options, batch_size=n_train)
    return options, notes


def _folders(options: Options, results_dir, run_dir, smoke: bool, checkpoint, notes: list) -> tuple[Path, Path | None]:
    """``(results_dir, run_dir)``: no run folder with a checkpoint, else `run_dir` or the recipe's default;
    `results_dir`, or with None the run folder; a smoke test's results in ``results/smoke_test`` when
    `results_dir` is the default (said in `notes`)."""
    if results_dir is None and not checkpoint:
        run_dir = results_dir = run_dir or recipes.run_dir(options)
    results_dir = Path(results_dir or DEFAULT_RESULTS)
    if smoke and str(results_dir) == DEFAULT_RESULTS:
        results_dir = Path(DEFAULT_RESULTS) / "smoke_test"
        notes.append(f"smoke test: results go to {results_dir}, not {DEFAULT_RESULTS}/")
    if checkpoint:
        run_dir = None
    elif run_dir is None:
        run_dir = results_dir / "run" if smoke else recipes.run_dir(options)
    results_dir.mkdir(parents=True, exist_ok=True)
    return results_dir, None if run_dir is None else Path(run_dir)


def run(*, strategy: str = "none", **params) -> dict:
    """Plan, train and score a run in a row, as ``fcnseg-train`` does: `plan_run`'s parameters;
    returns what `RunPlan.write_metrics` wrote (``{}`` on a multi-worker run's other workers,
    where only the chief scores and writes).

    >>> metrics = run(recipe="camvid", overrides={"epochs": 40}, results_dir="runs/camvid_fcn8s")  # doctest: +SKIP
    >>> metrics["mean_iou"]                                                                      # doctest: +SKIP
    """
    from fcnseg.training.distribute import is_chief, make_strategy

    distribute = make_strategy(strategy)  # first: TensorFlow must not have run anything yet
    plan = plan_run(strategy=strategy, **params)
    train_ds, val_ds = plan.datasets()
    seconds = None if plan.checkpoint else plan.train(plan.build_model, train_ds, val_ds, strategy=distribute)
    if not is_chief(distribute):
        return {}
    return plan.write_metrics(plan.evaluate(plan.trained_model()), train_seconds=seconds)


def _offline(recipe, options, checkpoint, results_dir, why: str, verbose: bool) -> RunPlan:
    """The plan of a run whose recipe cannot run here (`why`): no dataset, no training; the
    checkpoint (by default the shipped `OFFLINE_MODEL`) is shown on the street photos."""
    if checkpoint is None:  # the shipped model, with its own recipe's classes, colours and captions
        checkpoint = model_file(OFFLINE_MODEL)
        options = recipes.recipe(model_card(OFFLINE_MODEL)["parameters"]["recipe"], precision=options.precision)
    results_dir = Path(results_dir or DEFAULT_RESULTS)
    results_dir = results_dir / OFFLINE_RESULTS if str(results_dir) == DEFAULT_RESULTS else results_dir
    results_dir.mkdir(parents=True, exist_ok=True)
    plan = RunPlan(
        recipe=recipe, options=options, data_root=None, quick=False, checkpoint=checkpoint, init_from=None,
        results_dir=results_dir, run_dir=None, download=False, eval_split=get_spec(options.dataset).eval_split,
        steps=None, smoke_test=False, encoder=encoder_label(None, checkpoint), offline=why.rstrip("."),
    )  # fmt: skip
    if verbose:
        print(plan.describe())
    return plan
