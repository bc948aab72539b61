"""Fully convolutional networks (Long, Shelhamer & Darrell, 2015) on a VGG16 (or another) encoder.

One builder, `build_fcn`, gives FCN-32s (the paper's bilinear decoder or the
reference notebook's BatchNorm decoder), FCN-16s and FCN-8s, on any encoder of
`fcnseg.models.encoders` (VGG16, the paper's, by default). Every model takes
RGB (or grayscale) images with values in 0..255 of any size and returns
per-pixel class logits at that same size:

>>> from fcnseg.models.fcn import build_fcn
>>> model = build_fcn("fcn8s", num_classes=11, backbone_weights=None)
>>> model(np.zeros((1, 333, 500, 3), "float32")).shape
TensorShape([1, 333, 500, 11])

How any size works: the input is padded at the bottom and right to a multiple
of 32, all upsampling is by transposed convolutions with "same" padding (whose
grids line up exactly with the pooling grids, so the paper's crop offsets are
zero), and the logits are cropped back to the input's size.
"""

from __future__ import annotations

import os
from pathlib import Path

import keras
import numpy as np
from keras import layers, ops

from fcnseg.checks import check_architecture, one_of, positive_int
from fcnseg.files import atomic_path, imagenet_or_file
from fcnseg.models.encoders import Encoder, encoder_of, get_encoder
from fcnseg.models.layers import BilinearUpsampling, CropToReference, PadToMultiple
from fcnseg.options import Options
from fcnseg.models.precision import resolve_precision
from fcnseg.models.pretrained import model_file

# The layers whose outputs have one channel per class, and the sums of their outputs.
# They compute in float32 under every dtype policy: oneDNN's AMX bfloat16 kernels
# (Intel Sapphire Rapids and later) corrupt the heap when training a convolution
# from a wide input to a few output channels (fc7 -> classes), and these layers
# are a small share of the FLOPs, so float32 costs next to nothing.
CLASS_LAYERS = ("score_fr", "score_pool4", "score_pool3", "fuse_pool4", "fuse_pool3",
                "upscore2", "upscore_pool4", "upscore8", "upscore16", "upscore32", "classifier")
FLOAT32_LAYERS = (*CLASS_LAYERS, "logits")  # with the encoder's `*_preprocess`: float32 under every policy


def resolve_backbone_weights(backbone_weights="imagenet", encoder: str | Encoder = "vgg16"):
    """Which weights of `encoder` to load: ``"imagenet"``, ``None`` (or ``"none"``) or a file path.

    The default ``"imagenet"`` is replaced by the file named in the encoder's
    environment variable (VGG16: ``FCN_BACKBONE_WEIGHTS``) when it is set (offline
    machines); an explicit path or ``None`` is used as given.
    """
    encoder = get_encoder(encoder)
    if isinstance(backbone_weights, str) and backbone_weights.lower() == "none":
        backbone_weights = None
    if backbone_weights is not None and not isinstance(backbone_weights, (str, os.PathLike)):
        raise ValueError(f"backbone_weights must be 'imagenet', None or a {encoder.application} no-top .h5 path, "
                         f"got {backbone_weights!r}.")  # fmt: skip
    if backbone_weights is None or (backbone_weights == "imagenet" and encoder.weights_env is None):
        return backbone_weights
    return imagenet_or_file(backbone_weights, encoder.weights_env, f"{encoder.application} weight file")


def imagenet_weights_problem(encoder: str | Encoder = "vgg16") -> str | None:
    """None when Keras has `encoder`'s ImageNet weights in its cache or can download them; else why not.

    >>> imagenet_weights_problem()  # doctest: +SKIP
    "the ImageNet VGG16 weights are not in Keras' cache and cannot be downloaded (...)"
    """
    encoder = get_encoder(encoder)
    try:
        getattr(keras.applications, encoder.application)(include_top=False, weights="imagenet",
                                                         input_shape=(96, 96, 3))  # fmt: skip
    except Exception as e:  # offline: Keras' download error
        remedy = f"set {encoder.weights_env} to a copy of the file" if encoder.weights_env else "pass backbone_weights=None"
        return (f"the ImageNet {encoder.application} weights are not in Keras' cache and cannot be downloaded "
                f"({e}); {remedy}")
    return None


def _upsample(x, channels: int, factor: int, name: str, trainable: bool = True):
    return layers.Conv2DTranspose(
        channels,
        2 * factor,
        strides=factor,
        padding="same",
        use_bias=False,
        kernel_initializer=BilinearUpsampling(),
        trainable=trainable,
        dtype="float32",
        name=name,
    )(x)


def _notebook_decoder(x, num_classes: int):
    """The reference notebook's decoder: five stride-2 deconvs with BatchNorm, then 1x1."""
    for i, filters in enumerate((512, 256, 128, 64, 32), start=1):
        x = layers.Conv2DTranspose(filters, 3, strides=2, padding="same", name=f"deconv{i}")(x)
        x = layers.BatchNormalization(name=f"deconv{i}_bn")(x)
        x = layers.ReLU(name=f"deconv{i}_relu")(x)
    return layers.Conv2D(num_classes, 1, dtype="float32", name="classifier")(x)


def _paper_decoder(x, variant: str, skips, num_classes: int, learn_upsampling: bool, skip_scales):
    """The paper's decoders: fc7 scored, then upsampled by 32 (FCN-32s), or first fused at 2x
    steps with the scored stride-16 (FCN-16s) and stride-8 (FCN-8s) features `skips`. The layers
    keep VGG16's pool names (score_pool4, ...) on every encoder."""
    x = layers.Conv2D(num_classes, 1, dtype="float32", name="score_fr")(x)
    if variant == "fcn32s":
        return _upsample(x, num_classes, 32, "upscore32", learn_upsampling)
    x = _upsample(x, num_classes, 2, "upscore2")
    pool4 = _score_skip(skips[1], num_classes, skip_scales[0], "score_pool4")
    x = layers.Add(dtype="float32", name="fuse_pool4")([x, pool4])
    if variant == "fcn16s":
        return _upsample(x, num_classes, 16, "upscore16", learn_upsampling)
    x = _upsample(x, num_classes, 2, "upscore_pool4")
    pool3 = _score_skip(skips[0], num_classes, skip_scales[1], "score_pool3")
    x = layers.Add(dtype="float32", name="fuse_pool3")([x, pool3])
    return _upsample(x, num_classes, 8, "upscore8", learn_upsampling)


def _score_skip(features, num_classes: int, scale: float, name: str):
    """The paper's skip score layer: scaled pool features, 1x1 conv initialised at zero."""
    features = layers.Rescaling(scale, name=f"{name}_scale")(features)
    return layers.Conv2D(num_classes, 1, kernel_initializer="zeros", dtype="float32", name=name)(features)


def _encode(inputs, encoder: Encoder, backbone_weights, frozen_blocks: int):
    """`encoder`'s stride-8, stride-16 and stride-32 features of the images `inputs`: grayscale
    repeated to RGB, the encoder's preprocessing, padding to a multiple of 32, then the encoder
    with its blocks 1..`frozen_blocks` kept fixed."""
    x = inputs
    if inputs.shape[-1] == 1:
        x = layers.Concatenate(name="gray_to_rgb")([x, x, x])
    x = PadToMultiple(32, name="pad_to_32")(encoder.preprocess(x))
    backbone = encoder.backbone(x, resolve_backbone_weights(backbone_weights, encoder))
    encoder.freeze(backbone.layers, frozen_blocks)
    return [backbone.get_layer(name).output for name in encoder.features]


def _fc6_fc7(x, units: int, kernel_size: int, dropout: float):
    """fc6 and fc7 as convolutions, each followed by dropout."""
    x = layers.Conv2D(units, kernel_size, padding="same", activation="relu", name="fc6")(x)
    x = layers.Dropout(dropout, name="drop6")(x)
    x = layers.Conv2D(units, 1, activation="relu", name="fc7")(x)
    return layers.Dropout(dropout, name="drop7")(x)


def build_fcn(
    variant: str = Options.variant,
    *,
    num_classes: int = 21,
    input_shape=(None, None, 3),
    encoder: str | Encoder = Options.encoder,
    backbone_weights=Options.backbone_weights,
    decoder: str = Options.decoder,
    fc_units: int = Options.fc_units,
    fc_kernel_size: int = Options.fc_kernel_size,
    dropout: float = Options.dropout,
    learn_upsampling: bool = Options.learn_upsampling,
    skip_scales: tuple[float, float] = Options.skip_scales,
    frozen_blocks: int = Options.frozen_blocks,
    name: str | None = None,
    fc_weights=Options.fc_weights,
) -> keras.Model:
    """FCN-32s, 16s or 8s on `encoder`: a `keras.Model` from images (RGB 0..255) to (batch, H, W, classes) logits.

    Args:
        variant: ``"fcn32s"``, ``"fcn16s"`` or ``"fcn8s"`` (skips from the stride-16 and stride-8 features).
        num_classes: number of output channels (21 for VOC, 11 for CamVid).
        input_shape: ``(H, W, 3)`` or ``(H, W, 1)`` (repeated to RGB); H and W may be None.
        encoder: a name in `fcnseg.models.encoders.ENCODERS` (``"vgg16"``, ``"mobilenetv2"``) or an `Encoder`.
        backbone_weights: ``"imagenet"`` (Keras' cache or download; for VGG16 the file in
            ``FCN_BACKBONE_WEIGHTS`` when set), a no-top ``.h5`` of the encoder, or ``None`` (random).
        decoder: for FCN-32s, ``"bilinear"`` (the paper's one stride-32 bilinear upsampling) or
            ``"notebook"`` (the reference notebook's five BatchNorm deconvs).
        fc_units, fc_kernel_size, dropout: fc6/fc7 as convolutions (the notebook: 1x1; the paper: 7x7 fc6).
        learn_upsampling: train the final bilinear upsampling (the 2x ones of FCN-16s/8s always train).
        skip_scales: factors on the stride-16 and stride-8 features before their score layers
            (the paper's at-once FCN-8s: 0.01 and 0.0001).
        frozen_blocks: keep the encoder's blocks 1..n fixed (0..its `blocks`): training skips their
            backward pass (VGG16's blocks 1-3: 60% of its FLOPs) and learns more slowly per epoch.
        fc_weights: ``None`` (random fc6/fc7), or ``"imagenet"`` or a full VGG16 ``.h5``: VGG16's fc1
            and fc2, as in the paper (`fcnseg.models.vgg_fc`; needs fc_kernel_size=7 and fc_units=4096).

    >>> build_fcn("fcn32s", decoder="notebook", num_classes=21, backbone_weights=None).output_shape
    (None, None, None, 21)
    """
    check_architecture(variant, decoder)
    encoder = get_encoder(encoder)
    frozen_blocks = encoder.check(frozen_blocks, fc_weights)
    if input_shape[-1] not in (1, 3):
        raise ValueError(f"input_shape must end in 1 (grayscale) or 3 (RGB) channels, got {input_shape}.")
    fc_init = None if fc_weights is None else encoder.fc_init(fc_weights, fc_kernel_size, fc_units)  # first: a bad file fails fast
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    *skips, features = _encode(inputs, encoder, backbone_weights, frozen_blocks)
    x = _fc6_fc7(features, fc_units, fc_kernel_size, dropout)
    if decoder == "notebook":
        x = _notebook_decoder(x, num_classes)
    else:
        x = _paper_decoder(x, variant, skips, num_classes, learn_upsampling, skip_scales)
    x = CropToReference(name="crop_to_input")([x, inputs])
    logits = layers.Activation("linear", dtype="float32", name="logits")(x)
    model = keras.Model(inputs, logits, name=name or (f"fcn32s_{decoder}" if variant == "fcn32s" else variant))
    if fc_init is not None:
        model.get_layer("fc6").set_weights(fc_init[0])
        model.get_layer("fc7").set_weights(fc_init[1])
    return model


def load_fcn(path, *, precision: str | None = None, num_classes: int | None = None) -> keras.Model:
    """Load a model saved with ``model.save("x.keras")``, or a shipped one by name, in Keras' safe mode.

    `path` is a ``.keras`` file or the name of a model that ships with the
    package (`fcnseg.models.pretrained.available_models`, e.g. ``"camvid-fcn8s"``).
    With `num_classes` other than the model's, its class layers are re-made for
    that many classes and every other weight is kept (`with_classes`): the model to
    fine-tune on your own data.

    Safe mode refuses to deserialise arbitrary Python code (lambda layers), so
    a ``.keras`` file from an untrusted source cannot run code when loaded. The
    model comes back uncompiled (`fcnseg.training.loop.train` compiles it; prediction
    needs no compiling), so files saved with the loss and metric classes of
    older fcnseg versions load too.

    Args:
        precision: ``None`` keeps the dtype policy each layer was saved with;
            ``"auto"`` or a policy name runs the model at that one instead
            (`with_precision`): a model trained in float32 predicts in bfloat16 on
            a CPU with AVX-512 BF16, and the other way round.

    >>> model = load_fcn("runs/camvid_fcn8s/best.keras", precision="auto")  # doctest: +SKIP
    >>> model = load_fcn("camvid-fcn8s", precision="auto")                   # doctest: +SKIP
    >>> load_fcn("camvid-fcn8s", num_classes=21).output_shape                 # doctest: +SKIP
    (None, None, None, 21)
    """
    path = model_file(path)
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except ValueError as e:
        if "safe_mode" not in str(e):
            raise
        raise ValueError(
            f"{path} holds Python code (a Lambda layer) that Keras' safe mode will not run. "
            "FCN models saved by this project never do; only if you trust the file's source, "
            "load it with keras.saving.load_model(path, safe_mode=False)."
        ) from None
    if any(weight.dtype != "float32" for weight in model.weights):  # a file saved with float16 weights
        model = _with_weights_in(model, "float32")
    if num_classes is not None:
        model = with_classes(model, num_classes)
    return with_precision(model, precision)


def with_classes(model: keras.Model, num_classes: int) -> keras.Model:
    """`model` (an FCN from `build_fcn`) for `num_classes` classes, to fine-tune on new data.

    As keras-hub's ``from_preset(name, num_classes=k)`` does: the same architecture
    (`fcn_options`) is built for `num_classes`, and every layer whose weights have
    the same shapes keeps them: the encoder, fc6/fc7, the notebook decoder's
    deconvolutions and BatchNorm statistics, and each layer's dtype policy. The
    class layers (`CLASS_LAYERS`: ``score_fr``, ``score_pool4``, ``score_pool3``
    and the upsamplings, or ``classifier``) start as `build_fcn` starts them.
    `model` itself when it already has `num_classes` classes.

    >>> model = with_classes(build_fcn("fcn8s", num_classes=11, fc_units=64, backbone_weights=None), 21)
    >>> model.output_shape, tuple(model.get_layer("score_pool3").kernel.shape)
    ((None, None, None, 21), (1, 1, 256, 21))
    """
    num_classes = positive_int("num_classes", num_classes)
    if num_classes == model.output_shape[-1]:
        return model
    new = build_fcn(**{**fcn_options(model), "num_classes": num_classes, "backbone_weights": None})
    source = {layer.name: layer for layer in model.layers}
    for layer in new.layers:
        old = source.get(layer.name)
        if old is not None and [w.shape for w in old.weights] == [w.shape for w in layer.weights]:
            layer.set_weights(old.get_weights())
            layer.dtype_policy = old.dtype_policy
    return new


def fcn_options(model: keras.Model) -> dict:
    """The `build_fcn` arguments of `model`'s architecture, read off its layers (backbone_weights
    and fc_weights aside: they only initialise).

    >>> options = fcn_options(build_fcn("fcn16s", num_classes=5, fc_units=32, frozen_blocks=2, backbone_weights=None))
    >>> options["variant"], options["num_classes"], options["fc_units"], options["frozen_blocks"]
    ('fcn16s', 5, 32, 2)
    """
    layers_by_name = {layer.name: layer for layer in model.layers}
    if "fc6" not in layers_by_name:
        raise ValueError(f"Model {model.name!r} has no fc6 layer: only FCNs built by fcnseg.build_fcn can be "
                         "given new classes (build one with build_fcn(...) and load its weights).")  # fmt: skip
    variant = next((v for v, layer in (("fcn8s", "score_pool3"), ("fcn16s", "score_pool4"))
                    if layer in layers_by_name), "fcn32s")  # fmt: skip
    last_upsampling = next((layers_by_name[n] for n in ("upscore8", "upscore16", "upscore32") if n in layers_by_name), None)
    encoder = encoder_of(layers_by_name)
    fc6 = layers_by_name["fc6"]
    return {
        "variant": variant,
        "num_classes": model.output_shape[-1],
        "input_shape": tuple(model.input_shape[1:]),
        "encoder": encoder.name,
        "decoder": "notebook" if "classifier" in layers_by_name else "bilinear",
        "fc_units": fc6.filters,
        "fc_kernel_size": fc6.kernel_size[0],
        "dropout": layers_by_name["drop6"].rate,
        "learn_upsampling": Options.learn_upsampling if last_upsampling is None else last_upsampling.trainable,
        "skip_scales": tuple(layers_by_name[f"{n}_scale"].scale if f"{n}_scale" in layers_by_name else default
                             for n, default in zip(("score_pool4", "score_pool3"), Options.skip_scales)),  # fmt: skip
        "frozen_blocks": encoder.count_frozen(model.layers),
        "name": model.name,
    }


def save_fcn(model: keras.Model, path, *, weights_dtype: str = "float32") -> Path:
    """Save `model` as a ``.keras`` file, atomically: a crash never leaves a broken file at `path`.

    ``weights_dtype="float16"`` stores the weights at half precision and half the size, to ship
    a model; `load_fcn` brings them back in float32 (logits move by about 1e-3 of their range).

    >>> save_fcn(model, "models/camvid-fcn8s.keras", weights_dtype="float16")  # doctest: +SKIP
    """
    one_of("weights_dtype", weights_dtype, ("float32", "float16"))
    if weights_dtype != "float32":
        model = _with_weights_in(model, weights_dtype)
    path = Path(path)
    with atomic_path(path) as tmp:
        model.save(tmp)
    return path


def _with_weights_in(model: keras.Model, dtype: str) -> keras.Model:
    """A copy of `model` whose layers hold their weights in `dtype` (and compute in it)."""

    def clone(layer):
        return layer.__class__.from_config({**layer.get_config(), "dtype": dtype})

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights([weight.astype(dtype) for weight in model.get_weights()])
    return copy


def with_precision(model: keras.Model, precision: str | None = "auto") -> keras.Model:
    """Make `model` compute under `precision` (``"auto"`` or a policy name, see
    `fcnseg.models.precision`), whatever it was built or saved with; returns `model`.

    The layers that compute in float32 under every policy (the input
    preprocessing, `CLASS_LAYERS`, the logits) are set to float32 in any case,
    also with ``precision=None``, which keeps the other layers' policies: a
    model saved by an older fcnseg under a mixed policy then trains on AMX CPUs
    too. The weights are float32 under every policy, so nothing is converted.
    Call it before the model first predicts or trains (Keras traces the step then).

    >>> model = with_precision(build_fcn("fcn8s", num_classes=11, backbone_weights=None), "float32")
    >>> model.get_layer("fc7").compute_dtype
    'float32'
    """
    policy = None if precision is None else resolve_precision(precision)
    for layer in model.layers:
        if layer.name in FLOAT32_LAYERS or layer.name.endswith("_preprocess"):
            layer.dtype_policy = "float32"
        elif policy is not None:
            layer.dtype_policy = policy
    if policy is not None:
        model.dtype_policy = policy
    return model


def load_fcn_weights(model: keras.Model, path) -> keras.Model:
    """Load a ``.weights.h5`` file saved by ``model.save_weights`` into `model`.

    A file saved from another variant, decoder or number of classes raises a
    `ValueError` that says so, instead of Keras' layer-by-layer message.

    >>> model = load_fcn_weights(build_fcn("fcn8s", num_classes=11), "fcn8s.weights.h5")  # doctest: +SKIP
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Weight file not found: {path}")
    try:
        model.load_weights(path)
    except ValueError as e:
        raise ValueError(
            f"The weights in {path} do not fit the model {model.name!r} "
            f"({model.output_shape[-1]} classes): they were saved from another variant, decoder "
            f"or number of classes. Build the same one with build_fcn(...) first. ({e})"
        ) from None
    return model


def count_flops(model: keras.Model, image_size=(256, 256)) -> int:
    """Forward FLOPs (2 x multiply-adds) of the convolutions for one image of `image_size`.

    Each (transposed) convolution's output size is read from a real forward
    pass, and its multiply-adds counted from its kernel; pooling, activations,
    BatchNorm and additions are left out (well under 1% of the total here).

    >>> count_flops(build_fcn("fcn32s", backbone_weights=None), (256, 256)) / 1e9  # doctest: +SKIP
    41.1
    """
    convs = [l for l in model.layers if isinstance(l, (layers.Conv2D, layers.Conv2DTranspose))]
    probe = keras.Model(model.input, [layer.output for layer in convs])
    outputs = probe(np.zeros((1, *image_size, model.input_shape[-1]), "float32"))
    flops = 0
    for layer, output in zip(convs, outputs):
        kh, kw, c1, c2 = layer.kernel.shape
        pixels = output.shape[1] * output.shape[2]
        if isinstance(layer, layers.Conv2DTranspose):
            pixels //= layer.strides[0] * layer.strides[1]  # one kernel scatter per input pixel
        flops += 2 * pixels * kh * kw * c1 * c2
    return int(flops)
