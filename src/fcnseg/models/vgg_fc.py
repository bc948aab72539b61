"""fc6 and fc7 from VGG16's ImageNet classifier, as the FCN paper initialises them.

VGG16's classifier flattens pool5 (7x7x512) and applies fc1 (25088 -> 4096) and
fc2 (4096 -> 4096). A fully connected layer on a flattened 7x7x512 map is a 7x7
convolution with 512 input channels evaluated at one position, so fc1's kernel
reshaped to (7, 7, 512, 4096) *is* fc6 of an FCN with ``fc_kernel_size=7``, and
fc2's kernel reshaped to (1, 1, 4096, 4096) is fc7. Keras' ``Flatten`` of a
channels-last (7, 7, 512) map is row-major (height, then width, then channel),
which is exactly the order a plain reshape of the kernel's first axis assumes.

`build_fcn(..., fc_weights="imagenet", fc_kernel_size=7)` uses this module:

>>> from fcnseg.models.fcn import build_fcn
>>> model = build_fcn("fcn8s", fc_weights="imagenet", fc_kernel_size=7)    # doctest: +SKIP

The weights come from ``keras.applications.VGG16(include_top=True)``: Keras'
cache (downloaded when missing, 528 MB), the file named in the
``FCN_VGG16_FULL_WEIGHTS`` environment variable, or a path given as
``fc_weights``. They were trained on top of ImageNet convolutions, so pair them
with ``backbone_weights="imagenet"`` (or the matching no-top file).
"""

from __future__ import annotations

import os

import keras
import numpy as np

from fcnseg.files import imagenet_or_file

# VGG16's classifier: fc1 reads the flattened 7x7x512 pool5 map, fc2 maps 4096 -> 4096.
FC6_KERNEL_SIZE = 7
FC_UNITS = 4096
POOL5_CHANNELS = 512
FULL_WEIGHTS_ENV = "FCN_VGG16_FULL_WEIGHTS"
VGG16_FULL_FILE = "vgg16_weights_tf_dim_ordering_tf_kernels.h5"


def check_fc_shape(fc_kernel_size: int, fc_units: int) -> None:
    """`ValueError` unless fc6/fc7 have the shape of VGG16's classifier (7x7 fc6, 4096 units).

    >>> check_fc_shape(1, 4096)
    Traceback (most recent call last):
    ...
    ValueError: fc_weights needs fc_kernel_size=7 (VGG16's fc1 reads a 7x7x512 pool5 map and becomes a 7x7 fc6 convolution), got fc_kernel_size=1: pass fc_kernel_size=7 (--fc-kernel-size 7).
    """
    if fc_kernel_size != FC6_KERNEL_SIZE:
        raise ValueError(
            f"fc_weights needs fc_kernel_size={FC6_KERNEL_SIZE} (VGG16's fc1 reads a 7x7x512 pool5 map "
            f"and becomes a 7x7 fc6 convolution), got fc_kernel_size={fc_kernel_size!r}: pass "
            f"fc_kernel_size={FC6_KERNEL_SIZE} (--fc-kernel-size {FC6_KERNEL_SIZE})."
        )
    if fc_units != FC_UNITS:
        raise ValueError(
            f"fc_weights needs fc_units={FC_UNITS} (the width of VGG16's fc1 and fc2), got "
            f"fc_units={fc_units!r}: pass fc_units={FC_UNITS} (--fc-units {FC_UNITS}) or fc_weights=None."
        )


def resolve_fc_weights(fc_weights="imagenet") -> str:
    """Which full VGG16 weights to read fc6/fc7 from: ``"imagenet"`` or an existing file.

    ``"imagenet"`` is replaced by the file named in ``FCN_VGG16_FULL_WEIGHTS``
    when that is set (offline machines); a path must exist.

    >>> resolve_fc_weights("imagenet")  # with FCN_VGG16_FULL_WEIGHTS unset   # doctest: +SKIP
    'imagenet'
    """
    if not isinstance(fc_weights, (str, os.PathLike)):
        raise ValueError(
            f"fc_weights must be None, 'imagenet' or the path of a full VGG16 weight file, got {fc_weights!r}."
        )
    return imagenet_or_file(fc_weights, FULL_WEIGHTS_ENV, "Full VGG16 weight file", hint=(
        f". Pass the path of a VGG16 saved with include_top=True (e.g. Keras' {VGG16_FULL_FILE}), "
        "'imagenet' to download it, or fc_weights=None for random fc6/fc7."))  # fmt: skip


def fc_kernels(fc_weights="imagenet") -> tuple[list[np.ndarray], list[np.ndarray]]:
    """fc6 and fc7 as convolution weights, ``([kernel6, bias6], [kernel7, bias7])``.

    Loads VGG16 with its classifier through ``keras.applications.VGG16``
    (``fc_weights`` as in `resolve_fc_weights`) and reshapes fc1's (25088,
    4096) kernel to (7, 7, 512, 4096) and fc2's (4096, 4096) to (1, 1, 4096, 4096).

    >>> (k6, b6), (k7, b7) = fc_kernels("vgg16_weights_tf_dim_ordering_tf_kernels.h5")  # doctest: +SKIP
    >>> k6.shape, k7.shape                                                               # doctest: +SKIP
    ((7, 7, 512, 4096), (1, 1, 4096, 4096))
    """
    vgg = _vgg16_with_classifier(resolve_fc_weights(fc_weights))
    fc1, fc2 = (vgg.get_layer(name).get_weights() for name in ("fc1", "fc2"))
    del vgg
    k = FC6_KERNEL_SIZE
    fc6 = [fc1[0].reshape(k, k, POOL5_CHANNELS, FC_UNITS), fc1[1]]
    fc7 = [fc2[0].reshape(1, 1, FC_UNITS, FC_UNITS), fc2[1]]
    return fc6, fc7


def _vgg16_with_classifier(weights: str) -> keras.Model:
    """``keras.applications.VGG16(include_top=True)`` with `weights`, errors naming the file."""
    try:
        return keras.applications.VGG16(include_top=True, weights=weights)
    except Exception as e:
        if weights == "imagenet":
            raise RuntimeError(
                f"Could not load the ImageNet VGG16 with its classifier ({e}). Keras downloads "
                f"{VGG16_FULL_FILE} (528 MB) into its cache when it is missing. Offline, set "
                f"{FULL_WEIGHTS_ENV} or pass fc_weights='<your {VGG16_FULL_FILE}>', or use "
                "fc_weights=None for random fc6/fc7."
            ) from e
        raise ValueError(
            f"The file {weights} does not fit keras.applications.VGG16(include_top=True): {e}. "
            "fc_weights needs a full VGG16 (13 convolutions, fc1, fc2 and the 1000-class "
            f"predictions layer, e.g. Keras' {VGG16_FULL_FILE}); a *_notop.h5 file lacks fc1 and fc2."
        ) from e
