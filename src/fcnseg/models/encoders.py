"""The encoders an FCN is built on, each described once by an `Encoder`; `ENCODERS` holds them by name.

An encoder says how the model turns RGB 0..255 images into its input (`preprocess`), how
its Keras model is built on that tensor with given weights (`backbone`), which of its
layers give the stride-8, stride-16 and stride-32 features (`features`: FCN-8s' pool3,
FCN-16s' pool4 and fc6's input), how its layers fall into `blocks` (``frozen_blocks``
keeps blocks 1..n fixed) and whether fc6/fc7 can start from its ImageNet classifier
(``fc_weights``). ``vgg16`` is the paper's and the default; ``mobilenetv2`` is
`keras.applications.MobileNetV2` (alpha 1.0), about a tenth of VGG16's FLOPs.

This module imports no TensorFlow (`fcnseg.options` checks encoder names and block
counts with it); an encoder's builders import Keras when a model is built.

>>> get_encoder("mobilenetv2").features
('block_5_add', 'block_12_add', 'out_relu')
>>> get_encoder("vgg16").check(frozen_blocks=6)
Traceback (most recent call last):
...
ValueError: frozen_blocks must be 0..5 (VGG16 blocks 1..n kept fixed), got 6.
"""

from __future__ import annotations

import bisect
import dataclasses
import numbers
from typing import Callable

from fcnseg.files import keras_home

VGG16_WEIGHTS_ENV = "FCN_BACKBONE_WEIGHTS"  # a VGG16 no-top file that replaces "imagenet" (offline machines)


@dataclasses.dataclass(frozen=True)
class Encoder:
    """One encoder network (see the module's docstring), as `fcnseg.models.fcn.build_fcn` uses it.

    Attributes:
        name: its name in `ENCODERS`, ``Options.encoder`` and ``fcnseg-train --encoder``.
        application: the `keras.applications` function that builds it (``include_top=False``).
        features: the names of its stride-8, stride-16 and stride-32 feature layers.
        blocks: how many blocks ``frozen_blocks`` counts in.
        block_of: a layer's name -> its block (1..blocks), None for layers outside the encoder.
        preprocess: a tensor of RGB 0..255 images -> the encoder's input, by one float32 layer
            whose name ends in ``_preprocess`` (`fcnseg.models.fcn.with_precision` keeps it float32).
        notop_file: the name of its ImageNet weights without the classifier in Keras' cache.
        layout: what a weight file of it holds, for the error when one does not fit.
        weights_env: the environment variable whose file replaces ``"imagenet"``, or None.
        fc_init: ``(fc_weights, fc_kernel_size, fc_units)`` -> fc6's and fc7's weights from its
            ImageNet classifier, or None where it has none to convert.
    """

    name: str
    application: str
    features: tuple[str, str, str]
    blocks: int
    block_of: Callable[[str], int | None]
    preprocess: Callable
    notop_file: str
    layout: str
    weights_env: str | None = None
    fc_init: Callable | None = None

    def check(self, frozen_blocks, fc_weights=None) -> int:
        """`frozen_blocks` as an int, if it is 0..`blocks` and `fc_weights` (of `build_fcn`) is None
        or this encoder has a classifier to make fc6/fc7 of; else `ValueError`."""
        if isinstance(frozen_blocks, bool) or not isinstance(frozen_blocks, numbers.Integral) \
                or not 0 <= frozen_blocks <= self.blocks:  # fmt: skip
            raise ValueError(f"frozen_blocks must be 0..{self.blocks} ({self.application} blocks 1..n kept "
                             f"fixed), got {frozen_blocks!r}.")  # fmt: skip
        if fc_weights is not None and self.fc_init is None:
            with_classifier = [e.name for e in ENCODERS.values() if e.fc_init is not None]
            raise ValueError(f"fc_weights={fc_weights!r} needs an encoder whose ImageNet classifier becomes fc6/fc7 "
                             f"({', '.join(with_classifier)}); {self.name} has none: use fc_weights=None.")  # fmt: skip
        return int(frozen_blocks)

    def backbone(self, images, weights):
        """The encoder applied to the tensor `images` (its layers become part of the caller's
        graph), with `weights`: ``"imagenet"`` (Keras' cache, downloaded when missing), a
        no-top weight file or None (random)."""
        import keras

        try:
            return getattr(keras.applications, self.application)(include_top=False, weights=weights,
                                                                 input_tensor=images)  # fmt: skip
        except Exception as e:
            if weights == "imagenet":
                env = f", set {self.weights_env}" if self.weights_env else ""
                raise RuntimeError(
                    f"Could not load the ImageNet {self.application} weights ({e}). Keras looks for "
                    f"{keras_home() / 'models' / self.notop_file} and downloads it when missing. Offline, copy the "
                    f"file there, pass backbone_weights='<your {self.notop_file}>'{env}, or use "
                    "backbone_weights=None for random weights."
                ) from e
            raise ValueError(
                f"The {self.application} weight file {weights} does not fit keras.applications."
                f"{self.application}(include_top=False): {e}. It must hold {self.layout} (the official "
                "*_notop.h5 layout)."
            ) from e

    def freeze(self, layers, frozen_blocks: int) -> None:
        """Keep the weights of blocks 1..`frozen_blocks` among `layers` fixed (BatchNorm then
        runs on its moving statistics). Training skips their backward pass."""
        for layer in layers:
            block = self.block_of(layer.name)
            if block is not None and block <= frozen_blocks:
                layer.trainable = False

    def count_frozen(self, layers) -> int:
        """How many leading blocks among `layers` `freeze` kept fixed."""
        trained = {self.block_of(layer.name) for layer in layers if layer.trainable and layer.weights}
        return min(trained - {None}, default=self.blocks + 1) - 1


def _vgg16_block(name: str) -> int | None:
    """``block3_conv2`` -> 3."""
    return int(name[5]) if name.startswith("block") else None


# The last inverted-residual block of each of MobileNetV2's five strides (2, 4, 8, 16, 32):
# its blocks 1..5, which end in the stride-2 ... stride-32 features.
_MOBILENETV2_LAST_IDS = (0, 2, 5, 12, 16)


def _mobilenetv2_block(name: str) -> int | None:
    """``Conv1``, ``expanded_conv_*`` (id 0) -> 1, ``block_<id>_*`` -> the stride of id, ``Conv_1``,
    ``Conv_1_bn``, ``out_relu`` -> 5."""
    if name.startswith(("Conv1", "bn_Conv1", "expanded_conv")):
        return 1
    if name.startswith("block_"):
        return bisect.bisect_left(_MOBILENETV2_LAST_IDS, int(name.split("_")[1])) + 1
    return 5 if name in ("Conv_1", "Conv_1_bn", "out_relu") else None


def _vgg16_preprocess(images):
    """BGR with the ImageNet mean subtracted (Keras' caffe mode)."""
    from fcnseg.models.layers import VGGPreprocess  # imports Keras: here, not above (options import this module)

    return VGGPreprocess(name="vgg_preprocess")(images)


def _mobilenetv2_preprocess(images):
    """-1..1 (Keras' tf mode)."""
    from keras import layers

    return layers.Rescaling(1 / 127.5, offset=-1.0, dtype="float32", name="mobilenetv2_preprocess")(images)


def _vgg16_fc_init(fc_weights, fc_kernel_size: int, fc_units: int):
    """fc6/fc7 from VGG16's fc1/fc2 (`fcnseg.models.vgg_fc`), once their shapes are checked."""
    from fcnseg.models.vgg_fc import check_fc_shape, fc_kernels  # imports Keras

    check_fc_shape(fc_kernel_size, fc_units)
    return fc_kernels(fc_weights)


VGG16 = Encoder(
    name="vgg16", application="VGG16", features=("block3_pool", "block4_pool", "block5_pool"), blocks=5,
    block_of=_vgg16_block, preprocess=_vgg16_preprocess, notop_file="vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
    layout="the 13 convolution layers block1_conv1 ... block5_conv3", weights_env=VGG16_WEIGHTS_ENV,
    fc_init=_vgg16_fc_init,
)  # fmt: skip
MOBILENETV2 = Encoder(
    name="mobilenetv2", application="MobileNetV2", features=("block_5_add", "block_12_add", "out_relu"), blocks=5,
    block_of=_mobilenetv2_block, preprocess=_mobilenetv2_preprocess,
    notop_file="mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5",
    layout="the layers Conv1 ... block_16_project, Conv_1 of alpha 1.0",
)  # fmt: skip
ENCODERS = {encoder.name: encoder for encoder in (VGG16, MOBILENETV2)}


def get_encoder(encoder: str | Encoder) -> Encoder:
    """The `Encoder` of a name in `ENCODERS`, or `encoder` itself.

    >>> get_encoder("vgg16").features
    ('block3_pool', 'block4_pool', 'block5_pool')
    """
    if isinstance(encoder, Encoder):
        return encoder
    try:
        return ENCODERS[encoder]
    except (KeyError, TypeError):
        raise ValueError(f"Unknown encoder {encoder!r}: use one of {', '.join(map(repr, ENCODERS))} "
                         "or an fcnseg.models.encoders.Encoder.") from None  # fmt: skip


def encoder_of(layer_names) -> Encoder:
    """The encoder in `ENCODERS` whose stride-32 feature layer is among `layer_names` (a model's).

    >>> encoder_of(["image", "block5_pool", "fc6"]).name
    'vgg16'
    """
    names = set(layer_names)
    for encoder in ENCODERS.values():
        if encoder.features[-1] in names:
            return encoder
    raise ValueError(f"No encoder of {', '.join(ENCODERS)} found among the model's layers.")
