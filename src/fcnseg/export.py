"""Export a trained FCN for serving without this project: SavedModel, ONNX or LiteRT.

Keras does the conversion (`keras.Model.export`); this module wraps the FCN so
that the exported file takes what a user has and returns what a user wants:

- input ``images``: uint8 RGB (batch, H, W, 3) (grayscale models: (batch, H, W, 1));
  the VGG preprocessing, the padding to a multiple of 32 and the crop back are inside;
- outputs ``logits`` (batch, H, W, classes) float32 and ``classes`` (batch, H, W)
  uint8, the argmax: the same map as `fcnseg.predict_mask`.

>>> from fcnseg import build_fcn, export_model
>>> model = build_fcn("fcn8s", num_classes=11, backbone_weights=None)
>>> export_model(model, "fcn8s.onnx", format="onnx")                          # doctest: +SKIP
PosixPath('fcn8s.onnx')
>>> export_model(model, "fcn8s.tflite", format="litert", input_size=(360, 480))  # doctest: +SKIP
PosixPath('fcn8s.tflite')

SavedModel and ONNX keep the batch, height and width dynamic. LiteRT needs a
fixed ``input_size``: with a dynamic height and width the converter keeps the
convolutions as TensorFlow ops (``FlexConv2D``) that the LiteRT runtime cannot
run without the Flex delegate; images of another size must be resized to it.

From a shell:

    fcnseg-export runs/camvid_fcn8s/best.keras --format onnx --out fcn8s.onnx
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import keras
from keras import ops

from fcnseg.checks import EXPORT_FORMATS, QUANTIZATIONS, one_of, size_hw
from fcnseg.files import atomic_dir, atomic_path

# Packages the conversion needs beyond TensorFlow, per format: (module, pip name).
CONVERTERS = {"onnx": (("tf2onnx", "tf2onnx"), ("onnx", "onnx"))}


def class_map(logits):
    """The argmax over the last axis as uint8, written so that every exporter converts it.

    Keras' float argmax adds a sign-bit test (Bitcast, BitwiseAnd) for -0.0 that
    tf2onnx cannot convert; the argmax of ``logits == max`` as int32 is the same
    first-maximum index without it.

    >>> class_map(np.array([[0.1, 2.0, 2.0]], "float32"))                     # doctest: +SKIP
    <tf.Tensor: shape=(1,), dtype=uint8, numpy=array([1], dtype=uint8)>
    """
    is_max = ops.cast(logits >= ops.max(logits, axis=-1, keepdims=True), "int32")
    return ops.cast(ops.argmax(is_max, axis=-1), "uint8")


def serving_model(model: keras.Model, input_size=None) -> keras.Model:
    """`model` behind a uint8 ``images`` input, with outputs ``{"logits", "classes"}``.

    ``input_size=(h, w)`` fixes the height and width (default: the model's own, usually dynamic).

    >>> serving_model(build_fcn("fcn8s", num_classes=11, backbone_weights=None)).output_shape  # doctest: +SKIP
    {'classes': (None, None, None), 'logits': (None, None, None, 11)}
    """
    size = model.input_shape[1:3] if input_size is None else size_hw("input_size", input_size)
    images = keras.Input((*size, model.input_shape[-1]), dtype="uint8", name="images")
    logits = model(ops.cast(images, "float32"))
    return keras.Model(images, {"logits": logits, "classes": class_map(logits)}, name=f"{model.name}_serving")


def export_model(
    model: keras.Model,
    path,
    *,
    format: str = "tf_saved_model",
    input_size=None,
    quantize: str | None = None,
    overwrite: bool = False,
    verbose: bool = False,
) -> Path:
    """Export `model` (an FCN from `build_fcn` or `load_fcn`) to `path` in `format`; returns the path.

    Args:
        format: ``"tf_saved_model"`` (a folder, for TF Serving or ``tf.saved_model.load``),
            ``"onnx"`` (a ``.onnx`` file for ONNX Runtime; needs ``pip install tf2onnx onnx``)
            or ``"litert"`` (a ``.tflite`` file for the LiteRT interpreter).
        input_size: ``(height, width)`` of the exported input: required for LiteRT
            (see the module docstring), optional elsewhere (default: any size).
        quantize: LiteRT only: ``"float16"`` (float16 weights, half the file) or
            ``"dynamic_range"`` (int8 weights, a quarter of the file); default none.
        overwrite: replace `path` if it exists (default: refuse).

    The file appears only when the export succeeded (written beside it, then renamed).

    >>> export_model(model, "served/fcn8s", format="tf_saved_model")          # doctest: +SKIP
    PosixPath('served/fcn8s')
    """
    path = Path(path)
    kwargs = _check_export(path, format, input_size, quantize, overwrite)
    serving = serving_model(model, input_size)
    # The signature given, not inferred: Keras infers it only from a model that has been called.
    signature = serving.inputs
    with (atomic_dir if format == "tf_saved_model" else atomic_path)(path) as tmp:
        serving.export(tmp, format=format, verbose=verbose, input_signature=signature, **kwargs)
    return path


def _check_export(path: Path, format, input_size, quantize, overwrite) -> dict:
    """Validate `export_model`'s arguments; return the extra Keras export kwargs for `format`."""
    one_of("export format", format, EXPORT_FORMATS)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists: pass overwrite=True (fcnseg-export --overwrite) to replace it.")
    if input_size is not None:
        size_hw("input_size", input_size)
    missing = [pip for module, pip in CONVERTERS.get(format, ()) if importlib.util.find_spec(module) is None]
    if missing:
        raise ModuleNotFoundError(f"The {format} export needs {' and '.join(missing)}: "
                                  f"pip install {' '.join(missing)}")  # fmt: skip
    if format != "litert":
        if quantize is not None:
            raise ValueError(f"quantize={quantize!r} applies to LiteRT only, not to {format}.")
        return {}
    if input_size is None:
        raise ValueError(
            "The LiteRT export needs a fixed input_size=(height, width) (fcnseg-export --input-size H W): "
            "with a dynamic size the converter keeps the convolutions as TensorFlow ops (FlexConv2D) that "
            "the LiteRT runtime cannot run. Resize images to that size before inference."
        )
    if path.suffix != ".tflite":
        raise ValueError(f"A LiteRT file must end in .tflite, got {path}.")
    return _litert_options(quantize)


def _litert_options(quantize) -> dict:
    """Converter settings for Keras' LiteRT export: built-in ops only, plus the quantization asked for."""
    import tensorflow as tf

    if quantize is not None:
        one_of("quantize", quantize, QUANTIZATIONS)
    # Built-in ops only: the file then runs on the plain LiteRT runtime (no Flex delegate) or fails to convert.
    target_spec = {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS]}
    if quantize is None:
        return {"target_spec": target_spec}
    if quantize == "float16":
        target_spec["supported_types"] = [tf.float16]
    return {"optimizations": [tf.lite.Optimize.DEFAULT], "target_spec": target_spec}
