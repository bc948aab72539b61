"""The layers and initializer that FCN models are made of beside Keras' own, registered so that
a saved ``.keras`` file loads with nothing passed in (``fcn>VGGPreprocess``, ...).

>>> bilinear_kernel(4, 1, 1)[:, :, 0, 0][1].round(4).tolist()
[0.1875, 0.5625, 0.5625, 0.1875]
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

# The ImageNet mean in RGB. VGG16's caffe preprocessing subtracts it (in BGR order, no scaling),
# so the pipeline pads images with it: padded pixels reach the encoder as zeros.
IMAGENET_MEAN_RGB = (123.68, 116.779, 103.939)


@keras.saving.register_keras_serializable(package="fcn")
class VGGPreprocess(layers.Layer):
    """RGB 0..255 -> VGG16 input (BGR, ImageNet mean subtracted), always in float32."""

    def __init__(self, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)

    def call(self, images):
        images = ops.cast(images, "float32")
        return ops.flip(images - ops.convert_to_tensor(IMAGENET_MEAN_RGB, "float32"), axis=-1)


@keras.saving.register_keras_serializable(package="fcn")
class PadToMultiple(layers.Layer):
    """Zero-pad height and width at the bottom/right up to a multiple of `multiple`."""

    def __init__(self, multiple: int = 32, **kwargs):
        super().__init__(**kwargs)
        self.multiple = multiple

    def call(self, x):
        # (m - n % m) % m, not (-n) % m: both operands of each mod stay non-negative, so exporters
        # that turn a mod into truncating division (tf2onnx's FloorMod) compute the same padding.
        shape = ops.shape(x)
        pad_h = (self.multiple - shape[1] % self.multiple) % self.multiple
        pad_w = (self.multiple - shape[2] % self.multiple) % self.multiple
        return ops.pad(x, [[0, 0], [0, pad_h], [0, pad_w], [0, 0]])

    def compute_output_shape(self, input_shape):
        return (input_shape[0], None, None, input_shape[3])

    def get_config(self):
        return {**super().get_config(), "multiple": self.multiple}


@keras.saving.register_keras_serializable(package="fcn")
class CropToReference(layers.Layer):
    """Crop ``x`` to the height and width of ``reference`` (top-left aligned)."""

    def call(self, inputs):
        x, reference = inputs
        shape = ops.shape(reference)
        return x[:, : shape[1], : shape[2], :]

    def compute_output_shape(self, input_shapes):
        x_shape, ref_shape = input_shapes
        return (x_shape[0], ref_shape[1], ref_shape[2], x_shape[3])


@keras.saving.register_keras_serializable(package="fcn")
class BilinearUpsampling(keras.initializers.Initializer):
    """Kernel of a transposed convolution that performs bilinear interpolation.

    For a kernel of shape (2f, 2f, C, C) the transposed convolution with stride
    f upsamples each channel by f exactly as bilinear resizing with half-pixel
    centres does (channels are not mixed).
    """

    def __call__(self, shape, dtype=None):
        return ops.convert_to_tensor(bilinear_kernel(shape[0], shape[2], shape[3]), dtype or "float32")


def bilinear_kernel(size: int, out_channels: int, in_channels: int) -> np.ndarray:
    """The (size, size, out, in) kernel of bilinear upsampling by ``(size + 1) // 2``."""
    if out_channels != in_channels:
        raise ValueError("Bilinear upsampling maps each channel to itself: channels must agree.")
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    ramp = 1 - np.abs(np.arange(size) - center) / factor
    kernel = np.zeros((size, size, out_channels, in_channels), np.float32)
    kernel[:, :, np.arange(in_channels), np.arange(in_channels)] = np.outer(ramp, ramp)[..., None]
    return kernel
