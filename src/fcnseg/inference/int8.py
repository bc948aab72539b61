"""Int8 inference: the model run as a calibrated full-integer int8 LiteRT program.

On CPUs with int8 dot-product units (x86: AVX-512 VNNI, AVX-VNNI or AMX; Arm: its dot-product
extension) LiteRT's XNNPACK kernels run it faster than bfloat16 (1.84x the frames per second of
the video path on a 2-core AMD EPYC with AVX-512 VNNI: docs/videos.md), and its masks agree with
float32's on about 99% of the pixels. Every prediction function takes
``precision="int8"``; for a loop of single predictions, convert once:

>>> from fcnseg import load_fcn, predict_mask
>>> mask = predict_mask(load_fcn("camvid-fcn8s"), "street.jpg", precision="int8")   # doctest: +SKIP
>>> model = int8_model(load_fcn("camvid-fcn8s"))                                     # doctest: +SKIP
>>> masks = [predict_mask(model, image) for image in images]                         # doctest: +SKIP

An int8 program has a fixed input size, so one is built per size on first use (calibration
passes and conversion: a minute or more) and cached on disk as
``<Keras home>/fcnseg-int8/<key>.tflite`` (``$KERAS_HOME/fcnseg-int8``, else
``~/.keras/fcnseg-int8``; see `fcnseg.files.keras_home`), with ``<key>.json`` holding its
SHA-256. The key hashes the model's weights and architecture, the input size, the calibration
images, the TensorFlow version and `PROGRAM_VERSION`, so a video or a folder of same-size photos
pays the build once, and a changed model or calibration never meets an old program. A cached
program that fails its checksum is rebuilt, never run. Delete the folder to free its space.

Calibration measures the ranges of the activations by running the float32 model on
`CALIBRATION_SAMPLES` images like those it will segment (`calibration_images`).
"""

from __future__ import annotations

import collections
import hashlib
import json
import math
import os
import re
import tempfile
import warnings
from pathlib import Path

import cv2
import keras
import numpy as np

from fcnseg.checks import check_calibration
from fcnseg.datasets import DATASETS, IMAGE_SUFFIXES, default_root, read_split, spec_for_classes
from fcnseg.files import atomic_path, keras_home, write_json
from fcnseg.inference.inputs import find_inputs, prepare_image
from fcnseg.models.precision import cpu_features
from fcnseg.models.pretrained import STREET_SAMPLE
from fcnseg.quiet import filtered_stderr

CALIBRATION_SAMPLES = 32  # representative images the converter runs the float32 model on
PROGRAM_VERSION = 1  # part of the cache key: raise it when the conversion changes, and no older program is used
CACHE_FOLDER = "fcnseg-int8"  # under Keras' home folder
KEEP_LOADED = 4  # programs kept loaded in memory (one per input size in use)
# The calibration when none is given, by the dataset whose classes the model predicts: the bundled
# street photos for CamVid's 11 street classes (camvid-fcn8s). Other models need their own images.
DEFAULT_CALIBRATION = {"camvid": STREET_SAMPLE}
# NumPy's names of int8 dot-product units: without one, int8 may run slower than float.
INT8_CPU_FEATURES = ("AVX512VNNI", "AVX_VNNI", "AVXVNNI", "AMX_INT8", "ASIMDDP")
# What LiteRT prints on stderr on every start: no news to the user. (The converter's output is kept
# from stderr altogether: a failure is reported by its exception, which holds the details.)
LITERT_NOISE = re.compile(r"Created TensorFlow Lite XNNPACK delegate|tf\.lite\.Interpreter is deprecated")

_LOADED: collections.OrderedDict = collections.OrderedDict()  # program key -> LiteRT signature runner


class ConversionError(ValueError):
    """LiteRT cannot convert the model: a fault of the model, not of the image being segmented."""


def inference_model(model, precision=None, calibration=None):
    """What the prediction functions run: `model` as loaded (``precision=None``), or with
    ``precision="int8"`` its `Int8Model` calibrated on `calibration`.

    >>> inference_model("model") == "model"
    True
    >>> inference_model("model", "float32")
    Traceback (most recent call last):
    ...
    ValueError: precision='float32' is a Keras policy, chosen when loading: load_fcn(path, precision='float32'). Prediction takes precision=None (the model as loaded) or 'int8'.
    """
    check_calibration(precision, calibration)
    if precision is None:
        return model
    if precision != "int8":
        raise ValueError(f"precision={precision!r} is a Keras policy, chosen when loading: load_fcn(path, "
                         f"precision={precision!r}). Prediction takes precision=None (the model as loaded) or 'int8'.")
    return int8_model(model, calibration)


def int8_model(model, calibration=None) -> Int8Model:
    """`model` (a Keras FCN, at any policy) as an `Int8Model`; an `Int8Model` as it is.

    >>> int8_model(load_fcn("camvid-fcn8s")).output_shape      # doctest: +SKIP
    (None, None, None, 11)
    """
    if not isinstance(model, Int8Model):
        return Int8Model(model, calibration)
    if calibration is not None:
        raise ValueError("The model is int8 already, with its calibration: pass calibration= with the Keras model.")
    return model


class Int8Model:
    """A Keras FCN as int8 LiteRT programs, one per input size: it predicts like the model
    (``predict_on_batch``, ``input_shape``, ``output_shape``), so every prediction function takes it.

    Args:
        model: the Keras FCN; its weights are converted as they are now (convert again after training).
        calibration: see `calibration_images`.

    >>> model = Int8Model(load_fcn("camvid-fcn8s"))                     # doctest: +SKIP
    >>> model.predict_on_batch(np.zeros((2, 360, 480, 3))).shape        # doctest: +SKIP
    (2, 360, 480, 11)
    """

    def __init__(self, model, calibration=None):
        self.model = model
        self.name = f"{model.name}_int8"
        self.input_shape, self.output_shape = model.input_shape, model.output_shape
        self.calibration = calibration_images(calibration, model.output_shape[-1])
        self.fingerprint = fingerprint(model, self.calibration)
        warn_if_slow_int8()

    def predict_on_batch(self, x) -> np.ndarray:
        """Logits (N, H, W, classes) float32 of images (N, H, W, channels) with values 0..255."""
        images = np.clip(np.rint(keras.ops.convert_to_numpy(x)), 0, 255).astype(np.uint8)
        return self.runner(images.shape[1:3])(images=images)["logits"]

    def build(self, size) -> bytes:
        """A new int8 program for input `size` (H, W), calibrated on samples of that size."""
        samples = calibration_samples(self.calibration, size, self.input_shape[-1], count=CALIBRATION_SAMPLES)
        return build_program(self.model, size, samples)

    def runner(self, size):
        """The LiteRT runner of the program for input `size` (H, W): loaded, read from the cache, or built."""
        key = hashlib.sha256(f"{self.fingerprint} {tuple(size)}".encode()).hexdigest()[:32]
        if key not in _LOADED:
            about = {"model": self.model.name, "input_size": list(size)}
            _LOADED[key] = load_program(cached_program(key, lambda: self.build(size), about))
        _LOADED.move_to_end(key)
        while len(_LOADED) > KEEP_LOADED:
            _LOADED.popitem(last=False)
        return _LOADED[key]


def calibration_images(calibration=None, num_classes: int = 11) -> list:
    """The images (paths, or arrays) int8 calibration runs the model on: at most
    `CALIBRATION_SAMPLES`, evenly spaced over those `calibration` names.

    `calibration` is a folder (its images, recursively), an image file, a glob pattern, a
    dataset split as ``"DATASET:SPLIT"`` (e.g. ``"camvid:train"``, from the dataset's
    usual root such as ``$CAMVID_ROOT``), an image array (H, W[, C]) or a batch (N, H, W[, C]),
    or a list of any of these. Default: `DEFAULT_CALIBRATION` for the dataset whose
    number of classes the model predicts (CamVid's 11: the bundled street photos).

    >>> [path.name for path in calibration_images()][:2]
    ['solidWhiteCurve.jpg', 'solidWhiteRight.jpg']
    """
    if calibration is None:
        spec = spec_for_classes(num_classes)
        if spec.name not in DEFAULT_CALIBRATION:
            raise ValueError(f"precision='int8' needs calibration images for a model of {num_classes} classes: pass "
                             "calibration= a folder or list of images like those it segments, or a split such as "
                             "'voc2007:train' (fcnseg-predict --calibration).")  # fmt: skip
        calibration = DEFAULT_CALIBRATION[spec.name]
    single = isinstance(calibration, (str, os.PathLike)) or (isinstance(calibration, np.ndarray) and calibration.ndim < 4)
    found = [image for item in ([calibration] if single else calibration) for image in _images_in(item)]
    if not found:
        raise ValueError(f"No calibration images in {calibration!r}: give images ({', '.join(IMAGE_SUFFIXES)}), "
                         "folders of them or a split such as 'camvid:train'.")  # fmt: skip
    count = min(len(found), CALIBRATION_SAMPLES)
    return [found[i * len(found) // count] for i in range(count)]


def _images_in(item) -> list:
    """The images one item of `calibration_images`'s argument names."""
    if isinstance(item, np.ndarray):
        return [item]
    name, _, split = str(item).partition(":")
    if name in DATASETS and split and not Path(item).exists():
        return [sample.image_path for sample in read_split(default_root(name), split, name)]
    found = find_inputs(item)
    missing = [path for path in found if not path.exists()]
    if missing:
        raise FileNotFoundError(f"Calibration image not found: {missing[0]}")
    return [path for path in found if path.suffix.lower() in IMAGE_SUFFIXES]


def calibration_samples(images, size, channels: int = 3, count: int = CALIBRATION_SAMPLES):
    """`count` uint8 batches (1, H, W, channels) of `size` (H, W) cut from `images` (paths or arrays):
    each image once as it is (scaled to cover the size, centre cut), then random crops of up to
    1.5 times closer, every other one mirrored: a few photos give a varied set. Seeded.

    >>> [sample.shape for sample in calibration_samples(calibration_images(), (64, 96), count=5)][-1]
    (1, 64, 96, 3)
    """
    rng = np.random.default_rng(0)
    pictures = [prepare_image(image, channels) for image in images]
    for k in range(count):
        picture = pictures[k % len(pictures)]
        first = k < len(pictures)
        zoom = 1.0 if first else rng.uniform(1.0, 1.5)
        scale = zoom * max(size[0] / picture.shape[0], size[1] / picture.shape[1])
        height, width = max(size[0], math.ceil(picture.shape[0] * scale)), max(size[1], math.ceil(picture.shape[1] * scale))
        resized = cv2.resize(picture, (width, height), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        top, left = ((height - size[0]) // 2, (width - size[1]) // 2) if first else \
            (rng.integers(height - size[0] + 1), rng.integers(width - size[1] + 1))  # fmt: skip
        crop = resized.reshape(height, width, channels)[top : top + size[0], left : left + size[1]]
        yield (crop[:, ::-1] if not first and k % 2 else crop)[None].copy()


def fingerprint(model, images) -> str:
    """A SHA-256 of what an int8 program depends on besides its input size: the model's weights and
    architecture (not its dtype policy: programs are converted from float32), the calibration
    images, the TensorFlow version and `PROGRAM_VERSION`."""
    import tensorflow as tf

    digest = hashlib.sha256(f"{tf.__version__} {PROGRAM_VERSION} {CALIBRATION_SAMPLES}".encode())
    digest.update(json.dumps(_without(model.get_config(), "dtype"), sort_keys=True, default=str).encode())
    for weight in model.weights:
        digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(weight)).data)
    for image in images:
        digest.update(Path(image).read_bytes() if isinstance(image, (str, os.PathLike)) else
                      np.ascontiguousarray(image).data)  # fmt: skip
    return digest.hexdigest()


def _without(config, key: str):
    """`config` (nested dicts and lists) without `key` at any depth."""
    if isinstance(config, dict):
        return {k: _without(v, key) for k, v in config.items() if k != key}
    return [_without(v, key) for v in config] if isinstance(config, list) else config


def cached_program(key: str, build, about: dict) -> bytes:
    """The program cached under `key` if it passes its checksum, else ``build()``'s, cached.

    The cache folder gets ``<key>.tflite`` and ``<key>.json`` (its SHA-256 and `about`), each
    written atomically. A program whose checksum fails is reported with a warning and rebuilt.
    """
    path = keras_home() / CACHE_FOLDER / f"{key}.tflite"
    record = path.with_suffix(".json")
    if path.is_file():
        content = path.read_bytes()
        try:
            expected = json.loads(record.read_text())["sha256"]
        except (OSError, ValueError, KeyError, TypeError):
            expected = None
        if hashlib.sha256(content).hexdigest() == expected:
            return content
        warnings.warn(f"The cached int8 program {path} fails its checksum ({record.name}): rebuilding it.",
                      UserWarning, stacklevel=2)  # fmt: skip
    content = build()
    with atomic_path(path) as tmp:
        tmp.write_bytes(content)
    write_json(record, {"sha256": hashlib.sha256(content).hexdigest(), **about})
    return content


def build_program(model, size, samples) -> bytes:
    """A full-integer int8 LiteRT program of `model` for uint8 images of `size` (H, W), calibrated
    on `samples` (uint8 batches of that size); ops without an int8 kernel stay float.

    The model is converted from a float32 copy, whatever its policy. `ConversionError` when the converter fails.
    """
    import tensorflow as tf

    from fcnseg.export import serving_model
    from fcnseg.models.fcn import with_precision

    float32 = with_precision(keras.models.clone_model(model), "float32")
    float32.set_weights(model.get_weights())
    serving = serving_model(float32, size)
    with tempfile.TemporaryDirectory() as tmp, filtered_stderr(re.compile("")):
        target = Path(tmp) / "int8.tflite"
        try:
            serving.export(str(target), format="litert", verbose=False, input_signature=serving.inputs,
                           optimizations=[tf.lite.Optimize.DEFAULT],
                           representative_dataset=lambda: ([sample] for sample in samples),
                           target_spec={"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
                                                          tf.lite.OpsSet.TFLITE_BUILTINS]})  # fmt: skip
        except Exception as e:  # the converter's errors have no common class
            raise ConversionError(f"LiteRT cannot convert {model.name} to int8 ({_cause(e)}): run it in "
                                  "float instead, precision=None with load_fcn(path, precision='auto') "
                                  "(fcnseg-predict --precision auto).") from e  # fmt: skip
        return target.read_bytes()


def _cause(error: Exception) -> str:
    """The line of a converter error that says what failed: the ops LiteRT lacks, else its first line."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()] or [type(error).__name__]
    return next((line for line in lines if re.match(r"(Custom|Flex) ops: ", line)), lines[0])[:200]


def load_program(content: bytes):
    """A LiteRT signature runner of an int8 program, on all CPU cores (``ai_edge_litert`` when
    installed, else TensorFlow's ``tf.lite.Interpreter``)."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    with filtered_stderr(LITERT_NOISE):
        interpreter = Interpreter(model_content=content, num_threads=os.cpu_count())
        interpreter.allocate_tensors()  # applies XNNPACK, which says so on stderr
    return interpreter.get_signature_runner()


def cpu_has_int8_units(features: dict | None = None) -> bool | None:
    """Whether the CPU has an int8 dot-product unit (`INT8_CPU_FEATURES`), from `features`
    (default: `fcnseg.models.precision.cpu_features`, NumPy's detection); None where nothing is known.

    >>> cpu_has_int8_units({"AVX2": True, "AVX512VNNI": False}), cpu_has_int8_units({"ASIMDDP": True})
    (False, True)
    """
    features = cpu_features() if features is None else features
    return bool(any(features.get(name) for name in INT8_CPU_FEATURES)) if features else None


def warn_if_slow_int8() -> None:
    """Warn (once per process) where the CPU has no int8 dot-product units: int8 then runs, and
    agrees as well, but may be slower than float."""
    if cpu_has_int8_units() is False:
        warnings.warn("precision='int8' may be slower than float on this CPU (no AVX-512 VNNI, AVX-VNNI, AMX or "
                      "Arm dot-product units): use precision='auto' instead, unless you measured int8 faster.",
                      UserWarning, stacklevel=3)  # fmt: skip
