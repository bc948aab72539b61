"""Every option of a training run, declared once with its type, default and help.

`Options` is one frozen dataclass: each field is a value that a recipe
(`fcnseg.recipes`), a notebook override or an ``fcnseg-train --flag`` may set,
and says which step takes it: `build_fcn`, `make_dataset`, `train`,
`evaluate`, or the run itself. The package's functions take their defaults
from it, ``fcnseg-train``'s flags are made from it (`add_flags`), and making
one checks every value, without TensorFlow (`ValueError` naming the bad one).

>>> Options(epochs=40).epochs
40
>>> Options().step("evaluate")
{'input_size': None, 'scales': (1.0,), 'flip': False, 'batch_size': 8, 'max_images': None}
>>> Options(fc_units=0)
Traceback (most recent call last):
...
ValueError: fc_units must be an integer >= 1, got 0.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import math
import numbers
import os

from fcnseg.checks import (CLASS_WEIGHTINGS, DECODERS, INFERENCE_PRECISIONS, LOSSES, OVERSIZE, PRECISIONS, SCHEDULES,
                           VARIANTS, check_architecture, check_calibration, check_scales, flag, one_of, positive_int,
                           positive_number, size_hw, unit_interval)  # fmt: skip
from fcnseg.datasets import DATASETS, FOLDER_DATASET, DatasetSpec, get_spec, own_dataset
from fcnseg.datasets.folders import class_names, mask_value_pairs
from fcnseg.models.encoders import ENCODERS, get_encoder

STEPS = ("build_fcn", "make_dataset", "train", "evaluate", "run", "predict")
TEST_TIME = ("input_size", "scales", "flip")  # how every prediction runs the model (`fcnseg.inference.predict`)


class ParameterError(ValueError):
    """A run's option or parameter that cannot work, with what to use instead."""


# --------------------------------------------------------------------------- checks of single values


def _choice(allowed):
    return lambda name, value: one_of(name, value, allowed)


DATASET_NAMES = (*DATASETS, FOLDER_DATASET)


def _dataset(name, value):
    return value if isinstance(value, DatasetSpec) else one_of(name, value, DATASET_NAMES)


def _classes(name, value):
    return class_names(value)


def _mask_values(name, value):
    return mask_value_pairs(value)


def _weights_file(what):
    def check(name, value):
        if isinstance(value, str) and value.lower() == "none":
            return None
        if value is not None and not isinstance(value, (str, os.PathLike)):
            raise ValueError(f"{name} must be {what}, got {value!r}.")
        return value

    return check


def _fraction(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < 1:
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}.")
    return float(value)


def _numbers(count=None, *, positive=False):
    """A check of a sequence of `count` (None: one or more) finite numbers."""

    def check(name, value):
        try:
            values = tuple(float(v) for v in value if isinstance(v, numbers.Real) and not isinstance(v, bool))
            given = len(value)
        except TypeError:  # not a sequence
            values, given = (), -1
        ok = given == len(values) == (count or max(given, 1)) and all(
            math.isfinite(v) and (v > 0 or not positive) for v in values)
        if not ok:
            kind = "positive numbers" if positive else "numbers"
            raise ValueError(f"{name} must be {count or 'one or more'} {kind}, got {value!r}.")
        return values

    return check


def _scale_range(name, value):
    low, high = _numbers(2, positive=True)(name, value)
    if low > high:
        raise ValueError(f"{name} must be (low, high) with low <= high, got {value!r}.")
    return low, high


def _class_weights(name, value):
    if isinstance(value, (list, tuple)) and len(value) == 1 and isinstance(value[0], str):
        value = value[0]  # the command line gives a word as a list of one
    if isinstance(value, str):
        return None if value.lower() == "none" else one_of(name, value, CLASS_WEIGHTINGS)
    return _numbers()(name, value)


def _integer(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}.")
    return int(value)


def _texts(name, value):
    texts = (value,) if isinstance(value, (str, os.PathLike)) else value
    if not isinstance(texts, (list, tuple)) or not texts or not all(isinstance(t, (str, os.PathLike)) for t in texts):
        raise ValueError(f"{name} must be one or more file names, folders or patterns, got {value!r}.")
    return tuple(map(str, texts))


def _split(name, value):
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a split name such as 'val', got {value!r}.")
    return value


def _optional(check, what):
    def optional(name, value):
        if value is None:
            return None
        try:
            return check(name, value)
        except ValueError as e:
            raise ValueError(f"{str(e).rstrip('.')} (or None: {what}).") from None

    return optional


# --------------------------------------------------------------------------- command-line values


def _none_or_text(text: str):
    return None if text.lower() == "none" else text


def _mask_value_word(text: str) -> tuple[int, int]:
    """A ``RAW:CLASS`` word of ``--mask-values`` as a pair (argparse's one-line error otherwise)."""
    try:
        return mask_value_pairs([text])[0]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not RAW:CLASS, two integers such as 255:1 "
                                         "(e.g. --mask-values 0:0 255:1)") from None


def _number_or_text(text: str):
    try:
        return float(text)
    except ValueError:
        return text


def option(default, step: str, help: str, *, check, parse=str, nargs=None, choices=None, keyword=None):
    """A field of `Options`: its default, the step that takes it (one of `STEPS`) under
    `keyword` (default: the field's name), its help, the check of a value, and how the
    command line reads one (`parse` of each of `nargs` words; ``bool``: a switch)."""
    meta = {"step": step, "help": help, "check": check, "parse": parse, "nargs": nargs, "choices": choices,
            "keyword": keyword}  # fmt: skip
    return dataclasses.field(default=default, metadata=meta)


@dataclasses.dataclass(frozen=True)
class PredictOptions:
    """How every prediction runs the model, each option checked when made: `predict_mask`,
    `predict_masks`, `segment_files`, `segment_video` and `evaluate` take their defaults from
    here, ``fcnseg-predict`` and ``fcnseg-evaluate`` their flags (`add_flags`), and `Options`
    its test-time options (`same_as`).

    >>> PredictOptions().batch_size
    8
    >>> PredictOptions(scales=[1, 1.25], flip=True).scales
    (1.0, 1.25)
    """

    input_size: tuple[int, int] | None = option(None, "predict", "predict at this height and width, logits resized "
                                                "back (none: each image's own size)",
                                                check=_optional(size_hw, "each image's own size"), parse=int,
                                                nargs=2)  # fmt: skip
    scales: tuple[float, ...] = option((1.0,), "predict", "test-time multi-scale averaging at these input scales",
                                       check=lambda name, value: check_scales(value), parse=float, nargs="+")  # fmt: skip
    flip: bool = option(False, "predict", "test-time flip averaging", check=flag, parse=bool)
    batch_size: int = option(8, "predict", "images (or video frames) of one size predicted at once",
                             check=positive_int, parse=int)  # fmt: skip
    max_pixels: int = option(2048 * 2048, "predict", "pixels of one model input (a memory budget); larger images "
                             "are run as --oversize says", check=positive_int, parse=int)  # fmt: skip
    oversize: str = option("downscale", "predict", "an image over --max-pixels: scaled down to fit, logits resized "
                           "back (downscale), or cut into overlapping tiles (tiles)", check=_choice(OVERSIZE),
                           choices=OVERSIZE)  # fmt: skip
    alpha: float = option(0.5, "predict", "overlay opacity", check=unit_interval, parse=float)
    precision: str = option("auto", "predict", "load the model at this dtype policy (auto: the fastest for this "
                            "computer), or int8: run it as a calibrated int8 LiteRT program, about twice as fast on "
                            "CPUs with AVX-512 VNNI, AVX-VNNI or AMX, built once per input size and cached in "
                            "~/.keras/fcnseg-int8", check=_choice(INFERENCE_PRECISIONS),
                            choices=INFERENCE_PRECISIONS)  # fmt: skip
    calibration: tuple[str, ...] | None = option(
        None, "predict", "with --precision int8: images like those to segment (files, folders, glob patterns) or a "
        "split such as camvid:train (none: for camvid-fcn8s the bundled street photos)",
        check=_optional(_texts, "the model's default"), nargs="+")  # fmt: skip

    def __post_init__(self):
        _check_fields(self)
        check_calibration(self.precision, self.calibration)

    def keywords(self, names=TEST_TIME) -> dict:
        """The options `names` as keyword arguments (default: the test-time ones, `TEST_TIME`)."""
        return {name: getattr(self, name) for name in names}


def same_as(name: str, step: str, *, keyword=None):
    """A field of `Options` declared by `PredictOptions`' field `name` (its default, help and check),
    taken by `step`: the test-time options are written once."""
    meta = PredictOptions.__dataclass_fields__[name].metadata
    return option(PredictOptions.__dataclass_fields__[name].default, step, meta["help"], check=meta["check"],
                  parse=meta["parse"], nargs=meta["nargs"], choices=meta["choices"], keyword=keyword)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Options:
    """The options of a training run, each checked when made (see the module's docstring).

    >>> Options(variant="fcn8s", image_size=[360, 480]).image_size
    (360, 480)
    """

    # run
    dataset: str | DatasetSpec = option("voc2007", "run", f"dataset ({FOLDER_DATASET}: your own, at --root, "
                                        "see --classes and --mask-values)", check=_dataset,
                                        choices=DATASET_NAMES)  # fmt: skip
    classes: tuple[str, ...] | None = option(None, "run", f"class names of --dataset {FOLDER_DATASET}, class 0 first "
                                             "(none: those in classes.txt in its root, one a line)",
                                             check=_optional(_classes, "classes.txt"), nargs="+")  # fmt: skip
    mask_values: tuple[tuple[int, int], ...] | None = option(
        None, "run", f"what the mask values of --dataset {FOLDER_DATASET} mean, RAW:CLASS pairs such as 0:0 255:1 "
        "(other values are void; none: masks hold class ids)", check=_optional(_mask_values, "class ids"),
        parse=_mask_value_word, nargs="+")  # fmt: skip
    train_split: str = option("train", "run", "split trained on", check=_split)
    val_split: str = option("val", "run", "split that picks the best epoch", check=_split)
    eval_split: str | None = option(None, "run", "split scored at the end (none: the dataset's own, VOC val, "
                                    "CamVid test)", check=_optional(_split, "the dataset's own"),
                                    parse=_none_or_text)  # fmt: skip
    precision: str = option("auto", "run", "Keras dtype policy (auto: the fastest on this computer)",
                            check=_choice(PRECISIONS), choices=PRECISIONS)  # fmt: skip
    seed: int = option(0, "run", "random seed of weights, order and augmentation", check=_integer, parse=int)
    # build_fcn
    variant: str = option("fcn32s", "build_fcn", "FCN variant", check=_choice(VARIANTS), choices=VARIANTS)
    decoder: str = option("bilinear", "build_fcn", "FCN-32s decoder: the paper's bilinear upsampling or the "
                          "reference notebook's BatchNorm deconvolutions", check=_choice(DECODERS),
                          choices=DECODERS)  # fmt: skip
    encoder: str = option("vgg16", "build_fcn", "encoder network (fcnseg.models.encoders)", check=_choice(tuple(ENCODERS)),
                          choices=tuple(ENCODERS))  # fmt: skip
    backbone_weights: str | None = option(
        "imagenet", "build_fcn", "encoder weights: imagenet (for vgg16 the file FCN_BACKBONE_WEIGHTS names when set), "
        "a no-top .h5 file of the encoder, or none (random)",
        check=_weights_file("'imagenet', None or an encoder's no-top .h5 path"), parse=_none_or_text)  # fmt: skip
    fc_units: int = option(4096, "build_fcn", "channels of fc6 and fc7", check=positive_int, parse=int)
    fc_kernel_size: int = option(1, "build_fcn", "kernel size of fc6 (the paper: 7)", check=positive_int, parse=int)
    fc_weights: str | None = option(None, "build_fcn", "fc6/fc7 from VGG16's fc1/fc2: imagenet or a full VGG16 "
                                    ".h5 (needs fc_kernel_size 7, fc_units 4096); none: random",
                                    check=_weights_file("None, 'imagenet' or a full VGG16 .h5 path"),
                                    parse=_none_or_text)  # fmt: skip
    dropout: float = option(0.5, "build_fcn", "dropout after fc6 and fc7", check=_fraction, parse=float)
    learn_upsampling: bool = option(False, "build_fcn", "train the final bilinear upsampling", check=flag, parse=bool)
    skip_scales: tuple[float, float] = option((0.01, 0.0001), "build_fcn", "factors on pool4 and pool3 before their "
                                              "score layers", check=_numbers(2), parse=float, nargs=2)  # fmt: skip
    frozen_blocks: int = option(0, "build_fcn", "encoder blocks 1..n kept fixed (0..5)", check=_integer, parse=int)
    # make_dataset
    image_size: tuple[int, int] = option((256, 256), "make_dataset", "training crop height and width",
                                         check=size_hw, parse=int, nargs=2)  # fmt: skip
    batch_size: int = option(8, "make_dataset", "global batch size of training", check=positive_int, parse=int)
    scale_range: tuple[float, float] = option((0.5, 2.0), "make_dataset", "random scale of training images, low "
                                              "and high", check=_scale_range, parse=float, nargs=2)  # fmt: skip
    color_jitter: float = option(0.0, "make_dataset", "random brightness, contrast and saturation strength",
                                 check=_fraction, parse=float)  # fmt: skip
    class_weights: str | tuple[float, ...] | None = option(
        None, "make_dataset", "per-class pixel weights of training: median, sqrt_median (median-frequency "
        "balancing, or its square root) or one number per class", check=_optional(_class_weights, "no weights"),
        parse=_number_or_text, nargs="+")  # fmt: skip
    # train
    epochs: int = option(10, "train", "training epochs", check=positive_int, parse=int)
    loss: str = option("sparse_ce", "train", "loss, void ignored", check=_choice(LOSSES), choices=LOSSES)
    learning_rate: float = option(1e-4, "train", "Adam's learning rate", check=positive_number, parse=float)
    schedule: str = option("plateau", "train", "learning-rate schedule", check=_choice(SCHEDULES), choices=SCHEDULES)
    jit_compile: bool = option(False, "train", "compile the train step with XLA", check=flag, parse=bool)
    tensorboard: bool = option(False, "train", "TensorBoard logs in the run folder", check=flag, parse=bool)
    # evaluate (input_size, scales, flip and the batch: as every prediction runs, `PredictOptions`)
    input_size: tuple[int, int] | None = same_as("input_size", "evaluate")
    scales: tuple[float, ...] = same_as("scales", "evaluate")
    flip: bool = same_as("flip", "evaluate")
    eval_batch_size: int = same_as("batch_size", "evaluate", keyword="batch_size")
    max_images: int | None = option(None, "evaluate", "score only the first N images",
                                    check=_optional(positive_int, "all"), parse=int)  # fmt: skip

    def __post_init__(self):
        _check_fields(self)
        check_architecture(self.variant, self.decoder)
        get_encoder(self.encoder).check(self.frozen_blocks, self.fc_weights)
        if isinstance(self.dataset, str) and self.dataset in DATASETS and (self.classes or self.mask_values):
            raise ValueError(f"classes and mask_values describe your own data (dataset={FOLDER_DATASET!r}); "
                             f"{self.dataset} has its own.")  # fmt: skip

    def spec(self, root=None) -> DatasetSpec:
        """The `DatasetSpec` of `dataset`: a built-in one's, the spec given, or for ``"folder"``
        your own data at `root` with `classes` (default: ``root/classes.txt``) and `mask_values`.

        >>> Options(dataset="camvid").spec().num_classes
        11
        """
        if self.dataset == FOLDER_DATASET:
            return own_dataset(root, self.classes, self.mask_values)
        return get_spec(self.dataset)

    @classmethod
    def from_dict(cls, values: dict) -> Options:
        """`Options` from a dict of option names; `ValueError` naming an unknown one.

        >>> Options.from_dict({"fc_unit": 64})
        Traceback (most recent call last):
        ...
        ValueError: Unknown option 'fc_unit' (e.g. 'fc_units'): use one of the fields of fcnseg.options.Options.
        """
        known = names()
        for name in values:
            if name not in known:
                close = difflib.get_close_matches(name, known, n=1)
                hint = f" (e.g. {close[0]!r})" if close else ""
                raise ValueError(f"Unknown option {name!r}{hint}: use one of the fields of fcnseg.options.Options.")
        return cls(**values)

    def step(self, step: str) -> dict:
        """The keyword arguments of the options that `step` (one of `STEPS`) takes."""
        one_of("step", step, STEPS)
        fields = (f for f in dataclasses.fields(self) if f.metadata["step"] == step)
        return {f.metadata["keyword"] or f.name: getattr(self, f.name) for f in fields}

    def as_dict(self) -> dict:
        """Every option by its name, as it is."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


def _check_fields(options) -> None:
    """Check each field of a frozen options dataclass, keeping the checked (normalised) value."""
    for field in dataclasses.fields(options):
        object.__setattr__(options, field.name, field.metadata["check"](field.name, getattr(options, field.name)))


def names(declared=None) -> list[str]:
    """The name of every option of `declared` (`Options`, or `PredictOptions`)."""
    return [f.name for f in dataclasses.fields(declared or Options)]


def flag_name(name: str) -> str:
    """The command-line flag of an option: ``image_size`` -> ``--image-size``."""
    return "--" + name.replace("_", "-")


def add_flags(parser: argparse.ArgumentParser, which=None, *, declared=None) -> None:
    """Add a flag for each of the options `which` (default: all) of `declared` (`Options`, or
    `PredictOptions`) to `parser`, with its type, number of values and choices; its help gives the
    default. A flag not given is absent from the parsed arguments (``argparse.SUPPRESS``), so a
    recipe's value (or the function's default) stays."""
    fields = {f.name: f for f in dataclasses.fields(declared or Options)}
    for name in which or fields:
        meta = fields[name].metadata
        kwargs = {"default": argparse.SUPPRESS, "help": f"{meta['help']} (default: {_shown(fields[name].default)})"}
        if meta["parse"] is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs.update(type=meta["parse"], nargs=meta["nargs"], choices=meta["choices"],
                          metavar=None if meta["choices"] else name.split("_")[-1].upper())  # fmt: skip
        parser.add_argument(flag_name(name), **kwargs)


def given(args: argparse.Namespace, which=None) -> dict:
    """The options `which` (default: all of `Options`) given on a command line parsed with `add_flags`,
    lists as tuples."""
    found = {name: getattr(args, name) for name in which or names() if hasattr(args, name)}
    return {name: tuple(value) if isinstance(value, list) else value for name, value in found.items()}


def _shown(default) -> str:
    if isinstance(default, tuple):
        return " ".join(map(str, default))
    return str(default).lower() if default is None or isinstance(default, bool) else str(default)
