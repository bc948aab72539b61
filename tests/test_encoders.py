"""Tests for fcnseg.models.encoders, the seam between FCN and its encoder: FCN-8s on MobileNetV2
(random weights: no ImageNet download here) trains, saves and loads, predicts at the input's
own size and freezes its blocks; `Options` checks an encoder's name and block count.

The model is small (64x64 training crops, fc_units=16) so that it runs in seconds on a CPU.
"""

import keras
import numpy as np
import pytest

from fcnseg.datasets import SAMPLE_ROOT, load_sample, read_split
from fcnseg.models.encoders import ENCODERS, MOBILENETV2, get_encoder
from fcnseg.models.fcn import build_fcn, fcn_options, load_fcn, save_fcn, with_classes, with_precision
from fcnseg.training.losses import make_loss
from fcnseg.options import Options

NUM_CLASSES = 21  # VOC's, for the shipped VOC sample


@pytest.fixture(scope="module")
def mobilenet_fcn8s():
    keras.utils.set_random_seed(0)
    return build_fcn("fcn8s", encoder="mobilenetv2", num_classes=NUM_CLASSES, fc_units=16, backbone_weights=None,
                     frozen_blocks=2)  # fmt: skip


def voc_crop(size=64):
    """A `size` x `size` crop of the VOC sample around its centre, as a batch of one."""
    image, mask = load_sample(read_split(SAMPLE_ROOT, "val")[0])
    top, left = (image.shape[0] - size) // 2, (image.shape[1] - size) // 2
    crop = np.s_[top : top + size, left : left + size]
    return image[crop][None].astype("float32"), mask[crop][None].astype("int32")


def test_fcn8s_on_mobilenetv2_trains_one_step(mobilenet_fcn8s):
    model = mobilenet_fcn8s
    images, masks = voc_crop()
    assert set(np.unique(masks)) - {255} and (masks < NUM_CLASSES).any()  # real classes in the crop
    frozen, trained = (model.get_layer(name).get_weights()[0] for name in ("Conv1", "fc6"))
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=make_loss("sparse_ce"), jit_compile=False,
                  run_eagerly=True)  # one step: eager skips tracing the train step, the bulk of its time
    loss = model.train_on_batch(images, masks)
    assert np.isfinite(loss)
    np.testing.assert_array_equal(model.get_layer("Conv1").get_weights()[0], frozen)  # block 1: frozen
    assert not np.array_equal(model.get_layer("fc6").get_weights()[0], trained)


def test_it_saves_loads_and_predicts_at_an_odd_input_size(mobilenet_fcn8s, tmp_path):
    model = mobilenet_fcn8s
    x = np.random.default_rng(0).integers(0, 256, (2, 45, 61, 3)).astype("float32")
    expected = model(x).numpy()
    assert expected.shape == (2, 45, 61, NUM_CLASSES)
    loaded = load_fcn(save_fcn(model, tmp_path / "mobilenet.keras"))
    np.testing.assert_array_equal(loaded(x).numpy(), expected)
    options = fcn_options(loaded)
    assert (options["encoder"], options["frozen_blocks"], options["variant"]) == ("mobilenetv2", 2, "fcn8s")


def test_new_classes_keep_the_encoder_and_its_preprocessing_stays_float32(mobilenet_fcn8s):
    model = with_classes(mobilenet_fcn8s, 3)
    assert model.output_shape[-1] == 3 and fcn_options(model)["encoder"] == "mobilenetv2"
    assert not model.get_layer("block_1_expand").trainable and model.get_layer("block_3_expand").trainable
    np.testing.assert_array_equal(model.get_layer("block_16_project").get_weights()[0],
                                  mobilenet_fcn8s.get_layer("block_16_project").get_weights()[0])  # fmt: skip
    with_precision(model, "mixed_bfloat16")
    assert model.get_layer("mobilenetv2_preprocess").compute_dtype == "float32"
    assert model.get_layer("fc6").compute_dtype == "bfloat16"


def test_blocks_split_mobilenetv2_at_its_strides(mobilenet_fcn8s):
    """Blocks 1..5 end at strides 2, 4, 8, 16, 32: the stride-8, 16 and 32 features end blocks 3, 4 and 5."""
    assert [MOBILENETV2.block_of(name) for name in MOBILENETV2.features] == [3, 4, 5]
    blocks = {MOBILENETV2.block_of(layer.name) for layer in mobilenet_fcn8s.layers}
    assert blocks == {None, 1, 2, 3, 4, 5}
    trainable = {(MOBILENETV2.block_of(layer.name), layer.trainable) for layer in mobilenet_fcn8s.layers
                 if MOBILENETV2.block_of(layer.name) is not None}  # fmt: skip
    assert trainable == {(1, False), (2, False), (3, True), (4, True), (5, True)}  # frozen_blocks=2


@pytest.mark.parametrize("kwargs, match", [
    (dict(encoder="resnet"), "Unknown encoder 'resnet': use one of 'vgg16', 'mobilenetv2'"),
    (dict(encoder="mobilenetv2", frozen_blocks=6), r"frozen_blocks must be 0..5 \(MobileNetV2 blocks"),
    (dict(frozen_blocks=-1), r"frozen_blocks must be 0..5 \(VGG16 blocks"),
    (dict(encoder="mobilenetv2", fc_weights="imagenet"), "mobilenetv2 has none: use fc_weights=None"),
])  # fmt: skip
def test_options_and_build_fcn_check_the_encoder(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Options(**kwargs)
    with pytest.raises(ValueError, match=match):
        build_fcn(backbone_weights=None, **kwargs)


def test_options_default_to_the_first_encoder_and_pass_it_to_build_fcn():
    assert Options().encoder == next(iter(ENCODERS)) == "vgg16"
    assert Options(encoder="mobilenetv2").step("build_fcn")["encoder"] == "mobilenetv2"
    assert get_encoder(MOBILENETV2) is MOBILENETV2
