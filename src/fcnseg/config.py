"""The notebook's parameters: checked in one place, with the data folder resolved.

`check_params` takes the notebook's parameter cell as keyword arguments, fails
at once with a clear message when one of them cannot work, finds the data
(downloading PASCAL VOC 2007 or falling back to the one-image sample when it
must) and returns a `NotebookConfig` that the rest of the notebook reads.

>>> check_params(variant="fcn64s")
Traceback (most recent call last):
...
fcnseg.config.ParameterError: Unknown variant 'fcn64s': use one of 'fcn32s', 'fcn16s', 'fcn8s'.

>>> cfg = check_params(data_root=SAMPLE_ROOT, quick=True, download=False,
...                    backbone_weights=None, results_dir="runs/fcn_smoke")  # doctest: +SKIP
>>> cfg.image_size, cfg.epochs, cfg.smoke_test                             # doctest: +SKIP
((64, 64), 1, True)

Two small helpers choose what the notebook shows: `find_class_example` (an
image holding a given class, the reference's horse) and `inference_images`
(the reference's own inference images when present).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import numbers
import os
from pathlib import Path

import numpy as np

from fcnseg import download as _download
from fcnseg.datasets import (
    DATASETS,
    SAMPLE_ROOT,
    VOID,
    Sample,
    available_splits,
    default_root,
    get_spec,
    load_mask,
    read_split,
    resolve_root,
)
from fcnseg.checks import flag, one_of, positive_int, size_hw
from fcnseg.files import portable_path
from fcnseg.fcn import check_architecture, resolve_backbone_weights
from fcnseg.predict import check_scales
from fcnseg.train import PRECISIONS, make_loss, make_optimizer

DEFAULT_RESULTS = "results"
# What quick mode (a smoke test of every cell) changes.
QUICK_IMAGE_SIZE = (64, 64)
QUICK_EPOCHS = 1
QUICK_STEPS = 2
QUICK_EVAL_IMAGES = 4
# The images the reference notebook ran its inference cell on (VOC 2007 trainval JPEGs;
# they have no segmentation mask).
REFERENCE_INFERENCE_IDS = ("000347", "001707", "001950")
# "val IoU" the reference notebook reported: sklearn's jaccard_score(average="weighted").
REFERENCE_VAL_IOU = (0.67, 0.72)


class ParameterError(ValueError):
    """A notebook parameter that cannot work, with what to use instead."""


@dataclasses.dataclass(frozen=True)
class NotebookConfig:
    """The notebook's parameters once checked and resolved (see `check_params`)."""

    dataset: str
    data_root: Path
    variant: str
    decoder: str
    image_size: tuple[int, int]
    epochs: int
    batch_size: int
    loss: str
    learning_rate: float
    schedule: str
    backbone_weights: str | None  # "imagenet", None (random) or a weight file path
    encoder: str  # the encoder weights in words, for captions and metrics.json
    precision: str
    quick: bool
    checkpoint: Path | None
    results_dir: Path
    run_dir: Path | None  # where train() writes best.keras; None with a checkpoint
    download: bool
    train_split: str
    val_split: str
    eval_split: str
    eval_input_size: tuple[int, int] | None
    eval_scales: tuple[float, ...]  # input scales whose logits are averaged (test-time augmentation)
    eval_flip: bool  # average with the mirrored image's logits (test-time augmentation)
    max_eval_images: int | None
    steps: int | None  # batches per epoch (quick mode), None for all
    seed: int
    smoke_test: bool  # quick mode or the one-image sample: numbers mean nothing
    notes: tuple[str, ...] = ()

    @property
    def spec(self):
        """The `DatasetSpec` (classes, colormap) of the dataset."""
        return get_spec(self.dataset)

    @property
    def one_hot(self) -> bool:
        """Whether targets are one-hot (the reference's BCE loss needs them)."""
        return self.loss == "bce_onehot"

    @property
    def predict_options(self) -> dict:
        """Keyword arguments for `predict_mask` / `evaluate`: input size and test-time augmentation."""
        return {"input_size": self.eval_input_size, "scales": self.eval_scales, "flip": self.eval_flip}

    @property
    def model_name(self) -> str:
        if self.variant == "fcn32s":
            return f"FCN-32s ({self.decoder} decoder)"
        return {"fcn16s": "FCN-16s", "fcn8s": "FCN-8s"}[self.variant]

    @property
    def test_time(self) -> str:
        """The test-time augmentation in words, "" for a single pass."""
        parts = []
        if self.eval_scales != (1.0,):
            parts.append("input scales " + ", ".join(map("{:g}".format, self.eval_scales)))
        if self.eval_flip:
            parts.append("flip averaging")
        return " + ".join(parts)

    def caption(self, what: str, *, predicted: bool = False) -> str:
        """A figure title naming the model and the encoder weights behind it.

        ``predicted=True`` (figures of the model's predictions) adds the
        test-time augmentation, if any.
        """
        smoke = " [SMOKE TEST]" if self.smoke_test else ""
        tta = f" ({self.test_time})" if predicted and self.test_time else ""
        return f"{what}{tta}{smoke}\n{self.model_name} on {self.dataset}, encoder weights: {self.encoder}"

    def as_dict(self) -> dict:
        """JSON-ready parameters, for metrics.json; paths recorded portably (see `portable_path`)."""
        out = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, Path) or (field.name == "backbone_weights" and value not in ("imagenet", None)):
                value = portable_path(value)
            elif isinstance(value, tuple):
                value = list(value)
            out[field.name] = value
        return out

    def describe(self) -> str:
        """A few lines saying what this run will do."""
        training = (
            f"load {self.checkpoint} (no training)"
            if self.checkpoint
            else f"train {self.epochs} epoch(s) at {self.image_size[0]}x{self.image_size[1]}, "
            f"batch {self.batch_size}, {self.loss}, Adam {self.learning_rate:g} ({self.schedule})"
            + (f", {self.steps} step(s) per epoch" if self.steps else "")
            + f" -> {self.run_dir}"
        )
        evaluation = (
            f"{self.eval_split} at original resolution"
            + (f", {self.test_time}" if self.test_time else "")
            + (f" (first {self.max_eval_images} images)" if self.max_eval_images else "")
        )
        return "\n".join([
            f"dataset     : {self.dataset} in {self.data_root}",
            f"model       : {self.model_name}, encoder weights {self.encoder}, {self.precision}",
            f"training    : {training}",
            f"evaluation  : {evaluation}",
            f"results     : {self.results_dir}",
            *(f"note        : {n}" for n in self.notes),
        ])  # fmt: skip


def check_params(
    *,
    dataset: str = "voc2007",
    data_root=None,
    variant: str = "fcn32s",
    decoder: str = "notebook",
    image_size=(256, 256),
    epochs: int = 10,
    batch_size: int = 8,
    loss: str = "bce_onehot",
    learning_rate: float = 1e-3,
    schedule: str = "plateau",
    backbone_weights="imagenet",
    precision: str = "auto",
    quick: bool = False,
    checkpoint=None,
    results_dir=DEFAULT_RESULTS,
    download: bool = True,
    eval_split: str | None = None,
    eval_input_size=None,
    eval_scales=(1.0,),
    eval_flip: bool = False,
    max_eval_images: int | None = None,
    seed: int = 0,
    verbose: bool = True,
) -> NotebookConfig:
    """Check the notebook's parameters and find the data; return a `NotebookConfig`.

    Every parameter is checked before any file is touched; a bad one raises
    `ParameterError` (a `ValueError`) naming it and what to use instead. Then
    the data folder is resolved:

    - ``data_root`` (or ``VOC_ROOT`` / ``CAMVID_ROOT``, or ``data/``) is used
      when the splits needed are complete (every listed image and mask exists).
    - VOC 2007 missing or incomplete: in quick mode, the one-image sample
      `fcnseg.datasets.SAMPLE_ROOT` is used; otherwise, with ``download=True``,
      `fcnseg.download.download_voc2007` fetches it (next to ``data_root``, or into
      ``data/``), and if that fails (offline) the sample is used. Without
      ``download`` a `FileNotFoundError` says what to do.
    - CamVid missing: `FileNotFoundError` asking to set ``CAMVID_ROOT``.

    On the sample, a loud banner says that the run is a smoke test; smoke-test
    results go to ``results/smoke_test`` when ``results_dir`` is the default
    ``"results"``, so they never overwrite a real run's figures.

    Quick mode sets 64x64 images, 1 epoch of 2 batches, and scores at most 4
    images. ``backbone_weights="imagenet"`` is replaced by the file named in
    ``FCN_BACKBONE_WEIGHTS`` when that is set; ``None`` (or ``"none"``) means
    random initialisation. With a ``checkpoint`` (a ``.keras`` file from
    `fcnseg.train.train`), nothing is trained.
    """
    # The checks of the functions these parameters go to, called before anything runs.
    with _as_parameter_errors():
        one_of("dataset", dataset, tuple(DATASETS))
        check_architecture(variant, decoder)
        image_size = size_hw("image_size", image_size)
        epochs = positive_int("epochs", epochs)
        batch_size = positive_int("batch_size", batch_size)
        make_loss(loss)
        make_optimizer(learning_rate, schedule=schedule, decay_steps=1)
        one_of("precision", precision, PRECISIONS)
        quick = flag("quick", quick)
        download = flag("download", download)
        eval_flip = flag("eval_flip", eval_flip)
        eval_input_size = None if eval_input_size is None else size_hw("eval_input_size", eval_input_size)
    eval_scales = _scales("eval_scales", eval_scales)
    if max_eval_images is not None:
        with _as_parameter_errors():
            max_eval_images = positive_int("max_eval_images", max_eval_images)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise ParameterError(f"seed must be an integer, got {seed!r}.")
    if eval_split is not None and (not isinstance(eval_split, str) or not eval_split):
        raise ParameterError(f"eval_split must be a split name such as 'val' or None, got {eval_split!r}.")
    if not isinstance(results_dir, (str, os.PathLike)) or not str(results_dir):
        raise ParameterError(f"results_dir must be a folder path, got {results_dir!r}.")
    if data_root is not None and not isinstance(data_root, (str, os.PathLike)):
        raise ParameterError(f"data_root must be a folder path or None, got {data_root!r}.")
    checkpoint = _checkpoint(checkpoint)
    backbone_weights = _backbone(backbone_weights)
    notes = []

    # --- data
    spec = get_spec(dataset)
    eval_split = eval_split or ("test" if dataset == "camvid" else "val")
    # Splits that must be complete; an unusual eval_split is checked once the root is known.
    standard = ("train", "val", "test") if spec.layout == "folders" else tuple(_download.VOC2007_SPLITS)
    needed = ([] if checkpoint else ["train", "val"]) + ([eval_split] if eval_split in standard else [])
    root, smoke, why = _find_data(spec, data_root, needed, quick=quick, download=download, verbose=verbose)
    available = available_splits(root, spec)
    if eval_split not in available:
        raise ParameterError(f"eval_split={eval_split!r} is not a split of {root}: use one of {available}.")

    # --- quick mode and smoke tests
    steps = None
    if quick:
        image_size, epochs, steps = QUICK_IMAGE_SIZE, QUICK_EPOCHS, QUICK_STEPS
        max_eval_images = max_eval_images or QUICK_EVAL_IMAGES
        notes.append(
            f"quick mode: {image_size[0]}x{image_size[1]} images, {epochs} epoch of {steps} batches, "
            f"at most {max_eval_images} images scored"
        )
    if not checkpoint:
        n_train = len(read_split(root, "train", spec))
        if batch_size > n_train:
            if not smoke:
                raise ParameterError(
                    f"batch_size={batch_size} is larger than the {n_train} training images of {root}."
                )
            notes.append(f"batch_size {batch_size} -> {n_train} (only {n_train} training image(s))")
            batch_size = n_train
    results_dir = Path(results_dir)
    if smoke and str(results_dir) == DEFAULT_RESULTS:
        results_dir = Path(DEFAULT_RESULTS) / "smoke_test"
        notes.append(f"smoke test: results go to {results_dir}, not {DEFAULT_RESULTS}/")
    if checkpoint:
        run_dir = None
    elif smoke:
        run_dir = results_dir / "run"
    else:
        run_dir = Path("runs") / (f"notebook_{dataset}_{variant}" + (f"_{decoder}" if variant == "fcn32s" else ""))
    results_dir.mkdir(parents=True, exist_ok=True)

    cfg = NotebookConfig(
        dataset=dataset, data_root=root, variant=variant, decoder=decoder,
        image_size=image_size, epochs=epochs, batch_size=batch_size, loss=loss,
        learning_rate=float(learning_rate), schedule=schedule,
        backbone_weights=backbone_weights, encoder=_encoder_label(backbone_weights, checkpoint),
        precision=precision, quick=quick, checkpoint=checkpoint, results_dir=results_dir,
        run_dir=run_dir, download=download, train_split="train", val_split="val",
        eval_split=eval_split, eval_input_size=eval_input_size,
        eval_scales=eval_scales, eval_flip=eval_flip,
        max_eval_images=max_eval_images, steps=steps, seed=int(seed), smoke_test=smoke, notes=tuple(notes),
    )  # fmt: skip
    if verbose:
        if smoke and root == SAMPLE_ROOT.resolve():
            print(smoke_banner(why))
        print(cfg.describe())
    return cfg


def smoke_banner(reason: str = "") -> str:
    """The loud warning printed when the run uses the one-image sample."""
    line = "!" * 78
    text = [
        line,
        "!!  SMOKE TEST ON ONE IMAGE: the bundled sample (VOC 2007 test image 001763)",
        "!!  It trains and scores on that single image. Every number and figure only",
        "!!  shows that the code runs; none of it measures FCN. For real results get",
        "!!  PASCAL VOC 2007 (download=True, or set VOC_ROOT) and quick=False.",
    ]
    if reason:
        text.append(f"!!  Why: {reason}")
    return "\n".join([*text, line])


# --------------------------------------------------------------------------- checks


@contextlib.contextmanager
def _as_parameter_errors():
    """Re-raise a `ValueError` of a check as `ParameterError` (the notebook's own error type)."""
    try:
        yield
    except ParameterError:
        raise
    except ValueError as e:
        raise ParameterError(str(e)) from None


def _scales(name, value) -> tuple[float, ...]:
    """A list of input-scale factors, e.g. [1.0, 1.25] (papermill passes lists), checked by `check_scales`."""
    try:
        if not isinstance(value, (tuple, list)) or any(isinstance(v, bool) for v in value):
            raise ValueError(value)
        return check_scales(value)
    except (TypeError, ValueError):
        raise ParameterError(
            f"{name} must be a list of positive scale factors such as [1.0] or [1.0, 1.25], got {value!r}."
        ) from None


def _checkpoint(checkpoint) -> Path | None:
    if checkpoint is None:
        return None
    if not isinstance(checkpoint, (str, os.PathLike)):
        raise ParameterError(f"checkpoint must be the path of a .keras file or None, got {checkpoint!r}.")
    path = Path(checkpoint).expanduser()
    if path.suffix != ".keras":
        raise ParameterError(f"checkpoint must be a .keras file saved by fcnseg.train.train, got {path}.")
    if not path.is_file():
        raise ParameterError(f"checkpoint {path} does not exist (leave checkpoint=None to train).")
    return path


def _backbone(backbone_weights):
    if isinstance(backbone_weights, str) and backbone_weights.lower() == "none":
        backbone_weights = None
    if backbone_weights is not None and not isinstance(backbone_weights, (str, os.PathLike)):
        raise ParameterError(
            f"backbone_weights must be 'imagenet', None or a VGG16 no-top .h5 path, got {backbone_weights!r}."
        )
    try:
        return resolve_backbone_weights(backbone_weights if backbone_weights is None else str(backbone_weights))
    except FileNotFoundError as e:
        source = " (from FCN_BACKBONE_WEIGHTS)" if backbone_weights == "imagenet" else ""
        raise ParameterError(f"backbone_weights{source}: {e}.") from None


def _encoder_label(weights, checkpoint: Path | None) -> str:
    """The encoder weights in words: ImageNet, random, a file name, or a checkpoint's."""
    if checkpoint is not None:
        record = checkpoint.parent / "metrics.json"
        try:
            used = json.loads(record.read_text())["backbone_weights"]
        except (OSError, ValueError, KeyError, TypeError):
            return f"as trained in checkpoint {checkpoint.name} (initial encoder weights not recorded)"
        return f"{_encoder_label(used, None)}, then trained (checkpoint {checkpoint.name})"
    if weights == "imagenet":
        return "ImageNet (Keras VGG16)"
    if weights is None:
        return "random initialisation (no pre-training)"
    return f"{Path(weights).name} (a file, not the Keras ImageNet weights)"


# --------------------------------------------------------------------------- data


def _find_data(spec, data_root, splits, *, quick, download, verbose):
    """(root, smoke_test, why) for the first usable data folder, as `check_params` describes."""
    candidate = Path(data_root).expanduser() if data_root is not None else default_root(spec)
    problem = _data_problem(candidate, spec, splits)
    problem = problem and problem.rstrip(".")
    if problem is None:
        root = resolve_root(candidate, spec).resolve()
        return root, root == SAMPLE_ROOT.resolve() or quick, "data_root is the sample"
    if spec.name != "voc2007":
        env = spec.root_env or "the dataset's root"
        raise FileNotFoundError(
            f"{spec.name} not found: {problem}. Set {env} to the folder holding "
            "train/, trainannot/, val/, valannot/, test/, testannot/ (or pass data_root=...)."
        )
    if quick:
        return SAMPLE_ROOT.resolve(), True, f"quick mode and no usable VOC 2007 ({problem})"
    if not download:
        raise FileNotFoundError(
            f"PASCAL VOC 2007 not found: {problem}. Set VOC_ROOT (or data_root) to "
            ".../VOCdevkit/VOC2007, use download=True to fetch it (about 900 MB), "
            "or quick=True for a smoke test on the bundled sample."
        )
    target = _download_dir(candidate)
    needed = sorted({s for s in splits if s in _download.VOC2007_SPLITS})
    if verbose:
        print(f"VOC 2007 is not usable ({problem}); downloading {needed} into {target} ...")
    try:
        voc = _download.download_voc2007(target, splits=needed or ("trainval",))
    except (OSError, ValueError) as e:  # offline, checksum, broken tarball
        return SAMPLE_ROOT.resolve(), True, f"no usable VOC 2007 ({problem}) and the download failed: {e}"
    problem = _data_problem(voc, spec, splits)
    if problem is not None:
        problem = problem.rstrip(".")
        return SAMPLE_ROOT.resolve(), True, f"the downloaded VOC 2007 is not usable: {problem}"
    root = resolve_root(voc, spec).resolve()
    return root, root == SAMPLE_ROOT.resolve(), "the download gave the sample"


def _download_dir(candidate: Path) -> Path:
    """Where to download VOC so that it lands at `candidate` (``<dir>/VOCdevkit/VOC2007``)."""
    if candidate.name == "VOC2007" and candidate.parent.name == "VOCdevkit":
        return candidate.parent.parent
    return candidate


def _data_problem(root: Path, spec, splits) -> str | None:
    """Why `root` cannot serve the given splits, or None when every file they list exists."""
    try:
        root = resolve_root(root, spec)
        for split in dict.fromkeys(splits):
            if split not in available_splits(root, spec):
                return f"{root} has no split {split!r}"
            samples = read_split(root, split, spec)
            missing = [p for s in samples for p in (s.image_path, s.mask_path) if not p.is_file()]
            if missing:
                return (
                    f"{len(missing)} file(s) listed in split {split!r} are missing under {root}, "
                    f"e.g. {missing[0].relative_to(root)}"
                )
    except (FileNotFoundError, ValueError) as e:
        return str(e)
    return None


# --------------------------------------------------------------------------- choices for figures


def find_class_example(samples: list[Sample], class_name: str = "horse", dataset="voc2007", *, max_samples: int = 200):
    """``(sample, class_id)``: the sample where `class_name` covers the most pixels.

    Looks at the masks of the first `max_samples` samples. When the class is
    not in the dataset or in none of them, the class covering the most pixels
    of the first sample is used instead (background excluded).

    >>> sample, class_id = find_class_example(read_split(SAMPLE_ROOT, "train"), "horse")
    >>> sample.id, get_spec("voc2007").classes[class_id]
    ('001763', 'dog')
    """
    spec = get_spec(dataset)
    if not samples:
        raise ValueError("find_class_example needs at least one sample.")
    if class_name in spec.classes:
        class_id = spec.classes.index(class_name)
        best, best_count = None, 0
        for sample in samples[:max_samples]:
            count = int((load_mask(sample.mask_path, spec) == class_id).sum())
            if count > best_count:
                best, best_count = sample, count
        if best is not None:
            return best, class_id
    mask = load_mask(samples[0].mask_path, spec)
    counts = np.bincount(mask[mask != VOID].ravel(), minlength=spec.num_classes)
    if spec.classes[0] == "background" and counts[1:].any():
        counts[0] = 0
    return samples[0], int(counts.argmax())


def inference_images(cfg: NotebookConfig, count: int = 3):
    """``(items, source)``: ``[(id, image_path), ...]`` to run inference on, and where they come from.

    The reference notebook's own images (VOC 2007 ``000347``, ``001707``,
    ``001950``; trainval JPEGs without masks) when they are in the VOC
    folder; otherwise the first `count` images of the test split (VOC, CamVid)
    or, failing that, of the evaluation split.
    """
    root = Path(cfg.data_root)
    if cfg.dataset == "voc2007":
        paths = [(i, root / "JPEGImages" / f"{i}.jpg") for i in REFERENCE_INFERENCE_IDS]
        present = [(i, p) for i, p in paths if p.is_file()]
        if present:
            return present, "the reference notebook's inference images"
    for split in dict.fromkeys(("test", cfg.eval_split)):
        if split in available_splits(root, cfg.dataset) and _data_problem(root, cfg.spec, [split]) is None:
            samples = read_split(root, split, cfg.dataset)[:count]
            return [(s.id, s.image_path) for s in samples], f"the first {len(samples)} image(s) of split {split!r}"
    raise FileNotFoundError(f"No images to run inference on under {root}.")


# --------------------------------------------------------------------------- scores in words


def baseline_scores(root, split: str, dataset="voc2007", *, class_id: int = 0, max_images: int | None = None) -> dict:
    """Scores of a "model" that predicts `class_id` (background) everywhere, on a split.

    Shows what each metric gives for free: frequency-weighted IoU and pixel
    accuracy reward the dominant class, mean IoU does not.

    >>> {k: round(v, 3) for k, v in baseline_scores(SAMPLE_ROOT, "val").items()}
    {'mean_iou': 0.027, 'frequency_weighted_iou': 0.019, 'pixel_accuracy': 0.137}
    """
    from fcnseg.metrics import confusion_matrix, summarize

    spec = get_spec(dataset)
    samples = read_split(root, split, spec)[:max_images] if max_images else read_split(root, split, spec)
    cm = np.zeros((spec.num_classes, spec.num_classes), np.int64)
    for sample in samples:
        mask = load_mask(sample.mask_path, spec)
        cm += confusion_matrix(mask, np.full_like(mask, class_id), spec.num_classes)
    scores = summarize(cm, spec.classes)
    return {k: scores[k] for k in ("mean_iou", "frequency_weighted_iou", "pixel_accuracy")}


def score_table(scores: dict, baseline: dict | None = None, *, baseline_name: str = "all background") -> str:
    """Mean IoU, frequency-weighted IoU and pixel accuracy side by side, with the reference's figure.

    >>> print(score_table({"mean_iou": 0.5, "frequency_weighted_iou": 0.8, "pixel_accuracy": 0.9}))
    metric                       model   reference notebook
    mean IoU                     0.500   not reported
    frequency-weighted IoU       0.800   0.67-0.72 ("val IoU")
    pixel accuracy               0.900   not reported
    """
    def number(value):
        return "  n/a" if value is None else f"{value:.3f}"

    lo, hi = REFERENCE_VAL_IOU
    rows = [
        ("mean IoU", "mean_iou", "not reported"),
        ("frequency-weighted IoU", "frequency_weighted_iou", f'{lo:.2f}-{hi:.2f} ("val IoU")'),
        ("pixel accuracy", "pixel_accuracy", "not reported"),
    ]
    header = f"{'metric':<26} {'model':>7}" + (f"   {baseline_name:>14}" if baseline else "") + "   reference notebook"
    lines = [header]
    for label, key, reference in rows:
        line = f"{label:<26} {number(scores.get(key)):>7}"
        if baseline:
            line += f"   {number(baseline.get(key)):>14}"
        lines.append(f"{line}   {reference}")
    return "\n".join(lines)
