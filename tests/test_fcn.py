"""Tests for fcnseg.models.fcn: any input size, the bilinear decoder, the real VGG16 weights,
skip connections, grayscale, saving and loading, FLOPs and argument errors.

Models are built with the real weight file of ``FCN_BACKBONE_WEIGHTS`` and small
fc6/fc7 layers (fc_units=64) so that everything runs quickly on a CPU.
"""

import os
import subprocess
import sys

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers, ops

from fcnseg.models.encoders import VGG16
from fcnseg.models.fcn import build_fcn, count_flops, load_fcn, load_fcn_weights
from fcnseg.models.layers import BilinearUpsampling, bilinear_kernel

NUM_CLASSES = 3
CONFIGS = {  # name -> (variant, decoder)
    "fcn32s": ("fcn32s", "bilinear"),
    "fcn32s_notebook": ("fcn32s", "notebook"),
    "fcn16s": ("fcn16s", "bilinear"),
    "fcn8s": ("fcn8s", "bilinear"),
}
rng = np.random.default_rng(0)


def images(*shape):
    return rng.uniform(0, 255, size=shape).astype("float32")


@pytest.fixture(scope="module")
def models(vgg_weights):
    return {
        name: build_fcn(variant, decoder=decoder, num_classes=NUM_CLASSES, fc_units=64, backbone_weights=vgg_weights)
        for name, (variant, decoder) in CONFIGS.items()
    }


def h5_kernel_and_bias(path, layer):
    """The kernel and bias of one layer, read straight from the legacy Keras HDF5 file."""
    with h5py.File(path, "r") as f:
        group = f[layer]
        kernel, bias = (group[name][()] for name in group.attrs["weight_names"])
    return kernel, bias


def assert_has_file_weights(model, path):
    for layer in ("block1_conv1", "block3_conv2", "block5_conv3"):
        kernel, bias = h5_kernel_and_bias(path, layer)
        np.testing.assert_array_equal(model.get_layer(layer).kernel.numpy(), kernel)
        np.testing.assert_array_equal(model.get_layer(layer).bias.numpy(), bias)


# ---------------------------------------------------------------- shapes


@pytest.mark.parametrize("name", CONFIGS)
def test_output_has_input_size_for_odd_sizes(models, name):
    for height, width in [(1, 1), (33, 47), (65, 31)]:
        logits = models[name](images(2, height, width, 3))
        assert tuple(logits.shape) == (2, height, width, NUM_CLASSES)
        assert logits.dtype == "float32"
    assert models[name].output_shape == (None, None, None, NUM_CLASSES)


# ---------------------------------------------------------------- bilinear decoder


def test_bilinear_kernel_values():
    ramp = np.array([0.25, 0.75, 0.75, 0.25])  # factor 2: weights at distances 1.5 and 0.5 pixels
    kernel = bilinear_kernel(4, 2, 2)
    assert kernel.shape == (4, 4, 2, 2)
    np.testing.assert_allclose(kernel[:, :, 0, 0], np.outer(ramp, ramp))
    np.testing.assert_allclose(kernel[:, :, 1, 1], np.outer(ramp, ramp))
    assert not kernel[:, :, 0, 1].any() and not kernel[:, :, 1, 0].any()  # channels are not mixed
    np.testing.assert_allclose(bilinear_kernel(3, 1, 1)[:, :, 0, 0], np.outer([0.5, 1, 0.5], [0.5, 1, 0.5]))
    # Each output pixel gets weights summing to 1 from its input neighbours (stride f).
    np.testing.assert_allclose(bilinear_kernel(16, 1, 1)[::8, ::8].sum((0, 1)), 1.0)
    with pytest.raises(ValueError, match="channels"):
        bilinear_kernel(4, 2, 3)


@pytest.mark.parametrize("factor", [2, 8, 32])
def test_transposed_convolution_upsamples_like_bilinear_resize(factor):
    x = images(1, 4, 5, 2)
    deconv = layers.Conv2DTranspose(
        2, 2 * factor, strides=factor, padding="same", use_bias=False, kernel_initializer=BilinearUpsampling()
    )
    upsampled = ops.convert_to_numpy(deconv(x))
    resized = ops.convert_to_numpy(ops.image.resize(x, (4 * factor, 5 * factor), "bilinear", antialias=False))
    assert upsampled.shape == resized.shape
    interior = (slice(None), slice(factor, -factor), slice(factor, -factor))  # borders differ: zero padding
    np.testing.assert_allclose(upsampled[interior], resized[interior], rtol=1e-5, atol=1e-3)


def test_decoders_start_as_the_paper(models):
    upscore = models["fcn32s"].get_layer("upscore32")
    np.testing.assert_array_equal(upscore.kernel.numpy(), bilinear_kernel(64, NUM_CLASSES, NUM_CLASSES))
    assert not upscore.trainable  # fixed, as in the paper
    fcn8s = models["fcn8s"]
    assert fcn8s.get_layer("upscore2").trainable and fcn8s.get_layer("upscore_pool4").trainable
    assert not fcn8s.get_layer("score_pool3").kernel.numpy().any()  # skips start at zero


# ---------------------------------------------------------------- backbone weights


def test_backbone_weights_come_from_the_file(models, vgg_weights):
    for model in models.values():
        assert_has_file_weights(model, vgg_weights)


def test_default_imagenet_uses_fcn_backbone_weights(vgg_weights, monkeypatch, tmp_path):
    monkeypatch.setenv("FCN_BACKBONE_WEIGHTS", str(vgg_weights))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # an empty cache: only the env var can supply weights
    model = build_fcn("fcn32s", num_classes=NUM_CLASSES, fc_units=64)
    assert_has_file_weights(model, vgg_weights)


@pytest.mark.filterwarnings("ignore:Skipping nested container")
def test_weight_file_that_is_not_vgg16_is_refused(tmp_path):
    tiny = keras.Sequential([keras.Input((4,)), layers.Dense(2, name="dense")])
    tiny.save_weights(tmp_path / "tiny.weights.h5")
    tiny.save(tmp_path / "tiny.h5")  # the legacy HDF5 layout of the official VGG16 files
    for path in (tmp_path / "tiny.weights.h5", tmp_path / "tiny.h5"):
        with pytest.raises(ValueError, match=r"does not fit keras.applications.VGG16.*block1_conv1"):
            build_fcn(backbone_weights=str(path))
    with pytest.raises(FileNotFoundError, match="not found"):
        build_fcn(backbone_weights=str(tmp_path / "missing.h5"))


OFFLINE = """
import socket, sys
def offline(*args, **kwargs):
    raise socket.gaierror(socket.EAI_NONAME, "network disabled in this test")
socket.getaddrinfo = offline  # offline everywhere, even where CI has internet
from fcnseg.models.fcn import build_fcn
try:
    build_fcn("fcn32s", num_classes=3, fc_units=64)
except RuntimeError as e:
    print("ERROR " + str(e).replace(chr(10), " "))
"""


def test_imagenet_offline_without_cache_names_the_cache_path(tmp_path):
    """Keras downloads the ImageNet weights into its cache; offline, the error says where it looked.
    (A new process: Keras reads KERAS_HOME, here an empty cache, when it is imported.)"""
    env = {k: v for k, v in os.environ.items() if k != "FCN_BACKBONE_WEIGHTS"}
    env["KERAS_HOME"] = str(tmp_path / "keras_home")
    done = subprocess.run([sys.executable, "-c", OFFLINE], env=env, capture_output=True, text=True, timeout=300)
    errors = [line for line in done.stdout.splitlines() if line.startswith("ERROR ")]
    assert errors, done.stdout + done.stderr[-3000:]
    message = errors[0]
    assert str(tmp_path / "keras_home" / "models" / VGG16.notop_file) in message
    assert "FCN_BACKBONE_WEIGHTS" in message and "backbone_weights=None" in message


def test_grayscale_input_uses_the_same_weights(models, vgg_weights):
    gray = build_fcn("fcn8s", num_classes=NUM_CLASSES, fc_units=64, input_shape=(None, None, 1),
                     backbone_weights=vgg_weights)
    assert_has_file_weights(gray, vgg_weights)
    rgb = models["fcn8s"]
    gray.set_weights(rgb.get_weights())  # same layers and weights, plus a weightless gray-to-RGB step
    image = images(1, 35, 41, 1)
    np.testing.assert_allclose(gray(image), rgb(np.repeat(image, 3, -1)), rtol=1e-5, atol=1e-4)


# ---------------------------------------------------------------- skip connections


@pytest.mark.parametrize("name, skips", [("fcn16s", ["score_pool4"]), ("fcn8s", ["score_pool4", "score_pool3"])])
def test_skip_paths_are_connected(models, name, skips):
    model = models[name]
    x = images(1, 64, 64, 3)
    target = rng.normal(size=(1, 64, 64, NUM_CLASSES)).astype("float32")
    kernels = [model.get_layer(skip).kernel for skip in skips]
    with tf.GradientTape() as tape:
        loss = ops.mean((model(x, training=False) - target) ** 2)
    for skip, gradient in zip(skips, tape.gradient(loss, kernels)):
        assert np.abs(gradient.numpy()).max() > 0, f"{skip} gets no gradient"

    before = model(x).numpy()
    for kernel in kernels:
        saved = kernel.numpy()
        kernel.assign(rng.normal(size=saved.shape).astype("float32"))
        assert np.abs(model(x).numpy() - before).max() > 1e-3, f"{kernel.path} does not reach the output"
        kernel.assign(saved)


def test_fcn32s_has_no_skips(models):
    for name in ("fcn32s", "fcn32s_notebook"):
        names = {layer.name for layer in models[name].layers}
        assert not names & {"score_pool4", "score_pool3", "fuse_pool4", "fuse_pool3"}


# ---------------------------------------------------------------- saving


@pytest.mark.parametrize("name", ["fcn8s", "fcn32s_notebook"])
def test_save_and_load_give_identical_outputs(models, name, tmp_path):
    model = models[name]
    path = tmp_path / "model.keras"
    model.save(path)
    x = images(2, 37, 45, 3)
    expected = model(x).numpy()
    for loaded in (keras.models.load_model(path, safe_mode=True), load_fcn(path)):
        np.testing.assert_array_equal(loaded(x).numpy(), expected)
        assert loaded.name == model.name
    with pytest.raises(FileNotFoundError):
        load_fcn(tmp_path / "missing.keras")


# ---------------------------------------------------------------- FLOPs


def test_count_flops_of_known_layers():
    inputs = keras.Input((None, None, 3))
    x = layers.Conv2D(8, 3, padding="same")(inputs)
    x = layers.Conv2DTranspose(4, 4, strides=2, padding="same")(x)
    model = keras.Model(inputs, x)
    conv = 2 * (10 * 12) * (3 * 3 * 3) * 8  # output pixels x kernel taps x in x out
    deconv = 2 * (10 * 12) * (4 * 4) * 8 * 4  # one 4x4 scatter per input pixel
    assert count_flops(model, (10, 12)) == conv + deconv


def test_count_flops_of_fcn32s(models):
    def conv(side, c_in, c_out, k=3):
        return 2 * side * side * k * k * c_in * c_out

    vgg = (
        conv(64, 3, 64) + conv(64, 64, 64) + conv(32, 64, 128) + conv(32, 128, 128)
        + conv(16, 128, 256) + 2 * conv(16, 256, 256) + conv(8, 256, 512) + 2 * conv(8, 512, 512)
        + 3 * conv(4, 512, 512)
    )  # fmt: skip
    head = conv(2, 512, 64, 1) + conv(2, 64, 64, 1) + conv(2, 64, NUM_CLASSES, 1)
    upscore32 = 2 * (2 * 2) * (64 * 64) * NUM_CLASSES * NUM_CLASSES
    assert count_flops(models["fcn32s"], (64, 64)) == vgg + head + upscore32
    assert count_flops(models["fcn8s"], (50, 50)) > count_flops(models["fcn32s"], (50, 50)) > 0


# ---------------------------------------------------------------- bad arguments


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(variant="fcn4s"), "Unknown variant"),
        (dict(decoder="nearest"), "Unknown decoder"),
        (dict(variant="fcn8s", decoder="notebook"), "notebook"),
        (dict(variant="fcn16s", decoder="notebook"), "notebook"),
        (dict(input_shape=(None, None, 2)), "channels"),
        (dict(input_shape=(64, 64, 4)), "channels"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_fcn(backbone_weights=None, **kwargs)


def test_load_fcn_refuses_code_in_an_untrusted_file(tmp_path):
    inputs = keras.Input((None, None, 3))
    outputs = keras.layers.Lambda(lambda x: x * 2.0)(inputs)
    path = tmp_path / "untrusted.keras"
    keras.Model(inputs, outputs).save(path)
    with pytest.raises(ValueError, match="safe mode"):
        load_fcn(path)


def test_weights_of_another_variant_give_a_clear_error(tmp_path):
    small = dict(num_classes=5, fc_units=8, backbone_weights=None)
    path = tmp_path / "fcn8s.weights.h5"
    build_fcn("fcn8s", **small).save_weights(path)
    assert load_fcn_weights(build_fcn("fcn8s", **small), path).output_shape[-1] == 5
    with pytest.raises(ValueError, match=r"weights in .*fcn8s.weights.h5 do not fit the model 'fcn32s_notebook'"):
        load_fcn_weights(build_fcn("fcn32s", decoder="notebook", **small), path)
