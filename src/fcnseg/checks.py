"""Argument checks, one definition each, shared by the package's functions and
the notebook's first cells (which call them early, before any work is done).

Each raises `ValueError` naming the argument, what it got and what works:

>>> one_of("variant", "fcn64s", ("fcn32s", "fcn16s", "fcn8s"))
Traceback (most recent call last):
...
ValueError: Unknown variant 'fcn64s': use one of 'fcn32s', 'fcn16s', 'fcn8s'.
>>> size_hw("image_size", [256, 320])
(256, 320)
"""

from __future__ import annotations

import math
import numbers

import numpy as np

# Choices shared by functions and command lines (which must not import TensorFlow to check them).
VARIANTS = ("fcn32s", "fcn16s", "fcn8s")
DECODERS = ("bilinear", "notebook")
LOSSES = ("sparse_ce", "bce", "dice", "dice_ce", "focal")
SCHEDULES = ("plateau", "poly", "constant")
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
# What prediction runs at: a Keras policy (set on loading), or a calibrated int8 LiteRT program (`fcnseg.inference.int8`).
INFERENCE_PRECISIONS = (*PRECISIONS, "int8")
STRATEGIES = ("none", "mirrored", "multiworker")  # tf.distribute: fcnseg.training.distribute.make_strategy
CLASS_WEIGHTINGS = ("median", "sqrt_median")  # computed from the training split's pixels
EXPORT_FORMATS = ("tf_saved_model", "onnx", "litert")
QUANTIZATIONS = ("float16", "dynamic_range")  # LiteRT post-training quantization (`litert` export kwargs)
VIDEO_OUTPUTS = ("overlays", "colored", "masks")  # what `fcnseg.inference.video.segment_video` writes per video
MASK_FORMATS = ("png", "mkv")  # its class ids: a PNG per frame, or one lossless video
# How an input over the pixel budget of prediction is run: scaled down to fit, or cut into tiles
# (`fcnseg.inference.predict.fit_input` says which is the default, `fcnseg.options.PredictOptions`, and why).
OVERSIZE = ("downscale", "tiles")


def one_of(name: str, value, allowed):
    """`value` if it is one of the strings in `allowed`."""
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"Unknown {name} {value!r}: use one of {', '.join(map(repr, allowed))}.")
    return value


def positive_int(name: str, value) -> int:
    """`value` as an int, if it is an integer >= 1 (not a bool or a float)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}.")
    return int(value)


def positive_number(name: str, value) -> float:
    """`value` as a float, if it is a finite number > 0."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) \
            or not math.isfinite(value) or value <= 0:  # fmt: skip
        raise ValueError(f"{name} must be a positive number, got {value!r}.")
    return float(value)


def unit_interval(name: str, value) -> float:
    """`value` as a float, if it is a number in [0, 1] (an opacity, a weight)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}.")
    return float(value)


def flag(name: str, value) -> bool:
    """`value` if it is True or False."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}.")
    return bool(value)


def size_hw(name: str, value) -> tuple[int, int]:
    """A (height, width) pair of positive ints; lists too (papermill and JSON give lists)."""
    ok = (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_)) and v >= 1 for v in value)
    )
    if not ok:
        raise ValueError(
            f"{name} must be (height, width), two positive integers, got {value!r}"
            + (" (a string: with papermill pass a list, e.g. [256, 256])" if isinstance(value, str) else "")
            + ". Any size works: the model pads to a multiple of 32 and crops back."
        )
    return int(value[0]), int(value[1])


def check_architecture(variant: str, decoder: str = "bilinear") -> None:
    """`ValueError` unless `variant` and `decoder` name an FCN that `fcnseg.models.fcn.build_fcn` builds.

    >>> check_architecture("fcn8s", "notebook")
    Traceback (most recent call last):
    ...
    ValueError: decoder='notebook' is the reference notebook's FCN-32s decoder; fcn8s has skip connections and needs decoder='bilinear' (the paper's).
    """
    one_of("variant", variant, VARIANTS)
    one_of("decoder", decoder, DECODERS)
    if decoder == "notebook" and variant != "fcn32s":
        raise ValueError(f"decoder='notebook' is the reference notebook's FCN-32s decoder; {variant} "
                         "has skip connections and needs decoder='bilinear' (the paper's).")  # fmt: skip


def check_calibration(precision, calibration) -> None:
    """`ValueError` when calibration images come without ``precision="int8"``, the only precision they serve.

    >>> check_calibration("auto", ["photos/"])
    Traceback (most recent call last):
    ...
    ValueError: calibration calibrates precision 'int8' (--precision int8); give both, or neither.
    """
    if calibration is not None and precision != "int8":
        raise ValueError("calibration calibrates precision 'int8' (--precision int8); give both, or neither.")


def check_scales(scales) -> tuple[float, ...]:
    """Scale factors as a tuple of floats; `ValueError` unless one or more, all finite and positive."""
    try:
        scales = (float(scales),) if isinstance(scales, numbers.Real) else tuple(float(s) for s in scales)
    except (TypeError, ValueError):
        scales = ()
    if not scales or not all(math.isfinite(s) and s > 0 for s in scales):
        raise ValueError(f"scales must be one or more positive factors such as (1.0,) or (1.0, 1.25), got {scales}")
    return scales
