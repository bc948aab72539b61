"""Tests for fine-tuning onto new classes: `load_fcn(name, num_classes=k)` (`fcnseg.models.fcn.with_classes`,
`fcn_options`) and ``fcnseg-train --init-from`` onto a dataset with another number of classes."""

import json

import keras
import numpy as np
import pytest

from fcnseg.cli import run_train
from fcnseg.datasets import load_image, read_split
from fcnseg.models.fcn import CLASS_LAYERS, build_fcn, fcn_options, load_fcn, with_classes
from fcnseg.models.layers import bilinear_kernel
from fcnseg.datasets.pipeline import make_dataset
from fcnseg.inference.predict import predict_mask
from fcnseg.training.loop import train

SHIPPED = "camvid-fcn8s"  # 11 classes


def assert_kept_and_remade(source, model, num_classes):
    """Every layer outside `CLASS_LAYERS` holds `source`'s arrays exactly; the class layers have
    `num_classes` outputs and start as `build_fcn` starts them."""
    assert [layer.name for layer in model.layers] == [layer.name for layer in source.layers]
    assert model.output_shape == (None, None, None, num_classes)
    for layer in model.layers:
        if layer.name in CLASS_LAYERS:
            continue
        for kept, original in zip(layer.get_weights(), source.get_layer(layer.name).get_weights(), strict=True):
            np.testing.assert_array_equal(kept, original, err_msg=layer.name)
    for layer in (layer for layer in model.layers if layer.name in CLASS_LAYERS):
        if layer.weights:
            assert layer.kernel.shape[-1] == num_classes, layer.name
        if layer.name.startswith("upscore"):  # a bilinear upsampling again
            np.testing.assert_array_equal(layer.kernel.numpy(), bilinear_kernel(layer.kernel.shape[0], num_classes, num_classes))
        elif layer.name.startswith("score_pool"):
            assert not layer.kernel.numpy().any()  # the paper's zero start: the skips add nothing at first


@pytest.fixture(scope="module")
def shipped():
    return load_fcn(SHIPPED, precision="float32")


@pytest.fixture(scope="module")
def voc_model():
    keras.utils.set_random_seed(0)
    return load_fcn(SHIPPED, precision="float32", num_classes=21)


def test_new_classes_keep_every_other_weight_of_the_shipped_model(shipped, voc_model):
    assert_kept_and_remade(shipped, voc_model, 21)
    assert fcn_options(voc_model) == {**fcn_options(shipped), "num_classes": 21}
    assert with_classes(shipped, 11) is shipped  # its own number of classes: the model as it is


def test_the_new_model_trains_a_step_and_predicts_a_mask(voc_model, voc_root, tmp_path):
    data = make_dataset(voc_root, "train", dataset="voc2007", image_size=(64, 64), batch_size=2).take(1)
    before = voc_model.get_layer("score_fr").get_weights()[0].copy()
    history = train(voc_model, data, data, epochs=1, learning_rate=1e-4, schedule="constant",
                    checkpoint_dir=tmp_path, verbose=0)  # fmt: skip
    assert np.isfinite(history.history["loss"]).all()
    assert not np.array_equal(voc_model.get_layer("score_fr").get_weights()[0], before)  # it learned
    image = load_image(read_split(voc_root, "val", "voc2007")[0].image_path)
    mask = predict_mask(voc_model, image)
    assert mask.shape == image.shape[:2] and mask.dtype == np.uint8 and mask.max() < 21


@pytest.mark.parametrize("kwargs", [
    dict(variant="fcn32s", decoder="notebook", fc_units=16),
    dict(variant="fcn16s", fc_units=8, fc_kernel_size=3, dropout=0.25, skip_scales=(0.5, 0.0001), frozen_blocks=2,
         learn_upsampling=True, input_shape=(None, None, 1)),
])  # fmt: skip
def test_every_architecture_is_rebuilt_from_a_saved_file(kwargs, tmp_path):
    """The notebook decoder keeps its deconvolutions and BatchNorm statistics and re-makes its
    classifier; the options of a saved model are read back as built."""
    keras.utils.set_random_seed(1)
    source = build_fcn(num_classes=11, backbone_weights=None, **kwargs)
    rng = np.random.default_rng(0)
    for layer in source.layers:  # every weight away from its initial value, BatchNorm statistics too
        layer.set_weights([w + rng.uniform(0.5, 1.0, size=w.shape) for w in layer.get_weights()])
    source.save(tmp_path / "model.keras")
    model = load_fcn(tmp_path / "model.keras", num_classes=3)
    assert_kept_and_remade(source, model, 3)
    assert fcn_options(model) == {**fcn_options(source), "num_classes": 3}
    assert {k: v for k, v in fcn_options(source).items() if k in kwargs} == {
        k: tuple(v) if isinstance(v, tuple) else v for k, v in kwargs.items()}
    assert predict_mask(model, np.zeros((40, 50, 3), np.uint8)).shape == (40, 50)


def test_only_build_fcn_models_get_new_classes():
    inputs = keras.Input((None, None, 3))
    other = keras.Model(inputs, keras.layers.Conv2D(4, 1)(inputs), name="other")
    with pytest.raises(ValueError, match="'other' has no fc6 layer.*build_fcn"):
        with_classes(other, 3)
    with pytest.raises(ValueError, match="num_classes must be an integer >= 1"):
        with_classes(other, 0)


@pytest.fixture(scope="module")
def small_voc(voc_root, tmp_path_factory):
    """A VOC 2007 folder of 2 train and 2 val images (symlinks to the real files)."""
    root = tmp_path_factory.mktemp("small_voc") / "VOC2007"
    lists = root / "ImageSets" / "Segmentation"
    for folder in ("JPEGImages", "SegmentationClass"):
        (root / folder).mkdir(parents=True)
    lists.mkdir(parents=True)
    for split in ("train", "val"):
        samples = read_split(voc_root, split, "voc2007")[:2]
        (lists / f"{split}.txt").write_text("".join(f"{s.image_path.stem}\n" for s in samples))
        for s in samples:
            (root / "JPEGImages" / s.image_path.name).symlink_to(s.image_path)
            (root / "SegmentationClass" / s.mask_path.name).symlink_to(s.mask_path)
    return root


def test_cli_fine_tunes_the_shipped_camvid_model_on_voc(small_voc, shipped, tmp_path):
    """``fcnseg-train --recipe voc2007 --init-from camvid-fcn8s``: 21 classes from CamVid's 11, the
    encoder and fc6/fc7 of the shipped model as the starting point, one step at 64x64."""
    out = tmp_path / "run"
    metrics = run_train(["--recipe", "voc2007", "--init-from", SHIPPED, "--root", str(small_voc), "--image-size",
                         "64", "64", "--batch-size", "2", "--epochs", "1", "--max-images", "1", "--precision",
                         "float32", "--out", str(out)])  # fmt: skip
    assert metrics["num_images"] == 1 and 0 <= metrics["mean_iou"] <= 1 and len(metrics["iou_per_class"]) == 21
    assert metrics["parameters"]["init_from"].endswith("model.keras") and metrics["parameters"]["dataset"] == "voc2007"
    trained = load_fcn(out / "best.keras")
    assert trained.output_shape[-1] == 21 and fcn_options(trained)["fc_units"] == 4096
    for name in ("block1_conv1", "fc6", "fc7"):  # one Adam step (rate 1e-4) from the shipped model's weights
        assert np.abs(trained.get_layer(name).kernel.numpy() - shipped.get_layer(name).kernel.numpy()).max() < 1e-3
    assert json.loads((out / "metrics.json").read_text())["mean_iou"] == metrics["mean_iou"]
