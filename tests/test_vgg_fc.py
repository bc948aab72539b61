"""fc6/fc7 from VGG16's classifier (fcnseg.models.vgg_fc and build_fcn(fc_weights=...)).

The conversion is proved, not just shaped: a VGG16 with its classifier and
random (seeded) weights is saved to a file, and the FCN built from that file
reproduces VGG16's pre-softmax outputs at the centre of a 224x224 input. There
pool5 is 7x7, so the 7x7 "same" fc6 convolution at the centre position (3, 3)
reads exactly the map that VGG16 flattens into fc1.
"""

import keras
import numpy as np
import pytest
from keras import layers

from fcnseg.models.fcn import build_fcn
from fcnseg.models.vgg_fc import FULL_WEIGHTS_ENV, check_fc_shape, fc_kernels, resolve_fc_weights


@pytest.fixture(scope="module")
def random_vgg16(tmp_path_factory):
    """A seeded random VGG16 with its classifier (logits, no softmax), its full weight file,
    and a no-top file with the same 13 convolutions: ``(model, full_path, notop_path)``."""
    folder = tmp_path_factory.mktemp("vgg16")
    keras.utils.set_random_seed(7)
    vgg = keras.applications.VGG16(include_top=True, weights=None, classifier_activation=None)
    # Glorot weights shrink the signal layer after layer; random biases keep every layer's output non-trivial.
    rng = np.random.default_rng(7)
    for layer in vgg.layers:
        if layer.weights:
            kernel, bias = layer.get_weights()
            layer.set_weights([kernel, rng.normal(0, 0.05, bias.shape).astype("float32")])
    full = folder / "vgg16_full.weights.h5"
    vgg.save_weights(full)
    notop = keras.applications.VGG16(include_top=False, weights=None)
    for layer in notop.layers:
        if layer.weights:
            layer.set_weights(vgg.get_layer(layer.name).get_weights())
    notop_path = folder / "vgg16_notop.weights.h5"
    notop.save_weights(notop_path)
    return vgg, full, notop_path


def test_fcn_trunk_reproduces_vgg16_logits_at_the_centre(random_vgg16):
    vgg, full, notop = random_vgg16
    # Few classes: the trunk ends at fc7, and a 1000-class bilinear upsampling kernel would take 15 GiB.
    model = build_fcn("fcn32s", num_classes=2, backbone_weights=str(notop), fc_weights=str(full),
                      fc_kernel_size=7)  # fmt: skip
    # The classifier's last layer, `predictions`, as a 1x1 convolution on fc7.
    kernel, bias = vgg.get_layer("predictions").get_weights()
    predictions = layers.Conv2D(1000, 1, name="predictions_conv")
    trunk = keras.Model(model.input, predictions(model.get_layer("fc7").output))
    predictions.set_weights([kernel.reshape(1, 1, *kernel.shape), bias])

    rgb = np.random.default_rng(0).uniform(0, 255, (2, 224, 224, 3)).astype("float32")
    # Direct calls, not predict(): no XLA compilation of two 138M-weight graphs.
    expected = keras.ops.convert_to_numpy(vgg(keras.applications.vgg16.preprocess_input(rgb.copy())))
    scores = keras.ops.convert_to_numpy(trunk(rgb))
    assert scores.shape == (2, 7, 7, 1000)
    assert np.abs(expected).max() > 1e-2 and np.std(expected) > 1e-3  # a real signal, not all zeros
    np.testing.assert_allclose(scores[:, 3, 3], expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_kernels_are_fc1_and_fc2_reshaped_row_major(random_vgg16):
    vgg, full, _ = random_vgg16
    (k6, b6), (k7, b7) = fc_kernels(str(full))
    fc1_kernel, fc1_bias = vgg.get_layer("fc1").get_weights()
    assert k6.shape == (7, 7, 512, 4096) and k7.shape == (1, 1, 4096, 4096)
    # Flatten of (7, 7, 512) puts pool5[h, w, c] at index (h * 7 + w) * 512 + c.
    for h, w, c in ((0, 0, 0), (0, 1, 0), (1, 0, 5), (6, 6, 511), (3, 2, 100)):
        np.testing.assert_array_equal(k6[h, w, c], fc1_kernel[(h * 7 + w) * 512 + c])
    np.testing.assert_array_equal(b6, fc1_bias)
    np.testing.assert_array_equal(k7[0, 0], vgg.get_layer("fc2").get_weights()[0])
    np.testing.assert_array_equal(b7, vgg.get_layer("fc2").get_weights()[1])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"fc_kernel_size": 1}, "pass fc_kernel_size=7"),
        ({"fc_kernel_size": 3}, "pass fc_kernel_size=7"),
        ({"fc_kernel_size": 7, "fc_units": 1024}, "pass fc_units=4096"),
    ],
)
def test_shapes_that_do_not_fit_name_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_fcn("fcn8s", backbone_weights=None, fc_weights="imagenet", **kwargs)


def test_missing_and_wrong_files_are_named(random_vgg16, tmp_path, monkeypatch):
    _, _, notop = random_vgg16
    with pytest.raises(FileNotFoundError, match="Full VGG16 weight file not found: .*nowhere.h5"):
        build_fcn(backbone_weights=None, fc_weights=tmp_path / "nowhere.h5", fc_kernel_size=7)
    monkeypatch.setenv(FULL_WEIGHTS_ENV, str(tmp_path / "also_nowhere.h5"))
    with pytest.raises(FileNotFoundError, match=f"also_nowhere.h5 \\(from {FULL_WEIGHTS_ENV}\\)"):
        resolve_fc_weights("imagenet")
    with pytest.raises(ValueError, match=r"(?s)notop.weights.h5 does not fit .*include_top=True.*lacks fc1 and fc2"):
        fc_kernels(str(notop))
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"not an HDF5 file")
    with pytest.raises(ValueError, match="garbage.h5 does not fit"):
        fc_kernels(garbage)
    with pytest.raises(ValueError, match="fc_weights must be None, 'imagenet' or the path"):
        resolve_fc_weights(3)


def test_default_leaves_fc6_fc7_random_and_shapes_are_checked_first():
    check_fc_shape(7, 4096)  # the shape that fits
    model = build_fcn("fcn32s", num_classes=3, fc_units=8, backbone_weights=None)
    assert model.get_layer("fc6").kernel.shape == (1, 1, 512, 8)
