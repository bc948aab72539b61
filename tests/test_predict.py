"""Tests for fcnseg.inference.predict and fcnseg.inference.evaluation: masks at the input's own size whatever
its size, channels or dtype, input_size, refusals, and scores on real CamVid and VOC."""


import keras
import numpy as np
import pytest
from PIL import Image

from fcnseg.cli import main_predict
from fcnseg.datasets import VOID, load_image, load_mask, read_split
from fcnseg.inference.evaluation import evaluate
from fcnseg.models.fcn import build_fcn
from fcnseg.inference.predict import fit_pixels, predict_logits, predict_mask, predict_masks, tile_grid
from fcnseg.models.pretrained import street_images

import reference

from fcnseg.datasets import SAMPLE_ROOT as VOC_SAMPLE
rng = np.random.default_rng(0)


@pytest.fixture(scope="module")
def model(vgg_weights):
    """FCN-8s for CamVid's 11 classes, real VGG16 weights, small fc6/fc7, seeded so that its
    maps hold several classes (`reference.spread_classes`)."""
    keras.utils.set_random_seed(0)
    model = build_fcn("fcn8s", num_classes=11, fc_units=64, backbone_weights=vgg_weights)
    return reference.spread_classes(model)


@pytest.fixture(scope="module")
def image():
    return rng.integers(0, 256, size=(33, 47, 3), dtype=np.uint8)


def test_mask_has_the_image_size_and_uint8(model):
    for shape in [(33, 47, 3), (65, 31, 3), (1, 1, 3), (2, 70, 3)]:
        mask = predict_mask(model, rng.integers(0, 256, size=shape, dtype=np.uint8))
        assert mask.shape == shape[:2] and mask.dtype == np.uint8
        assert mask.max() < 11


def test_channels_and_dtypes_give_the_same_mask(model, image):
    expected = predict_mask(model, image)
    rgba = np.concatenate([image, np.full((33, 47, 1), 7, np.uint8)], -1)
    for variant in (rgba, image.astype(np.uint16) * 257, image.astype(np.float32)):
        np.testing.assert_array_equal(predict_mask(model, variant), expected)
    with pytest.warns(UserWarning, match=r"values in \[0, 1\]"):  # read as 0..1, and said so
        np.testing.assert_array_equal(predict_mask(model, image / 255.0), expected)

    gray = image[..., 0]
    gray_expected = predict_mask(model, np.repeat(gray[..., None], 3, -1))
    np.testing.assert_array_equal(predict_mask(model, gray), gray_expected)
    np.testing.assert_array_equal(predict_mask(model, gray[..., None]), gray_expected)


def test_paths(model, image, tmp_path):
    path = tmp_path / "image.png"
    Image.fromarray(image).save(path)
    expected = predict_mask(model, image)
    np.testing.assert_array_equal(predict_mask(model, path), expected)
    np.testing.assert_array_equal(predict_mask(model, str(path)), expected)
    with pytest.raises(FileNotFoundError):
        predict_mask(model, tmp_path / "missing.png")


def test_grayscale_model_takes_rgb_images(vgg_weights, image):
    gray_model = build_fcn("fcn32s", num_classes=11, fc_units=64, input_shape=(None, None, 1),
                           backbone_weights=vgg_weights)
    gray = image[..., 0]
    mask = predict_mask(gray_model, np.repeat(gray[..., None], 3, -1))
    assert mask.shape == (33, 47) and mask.dtype == np.uint8
    np.testing.assert_array_equal(mask, predict_mask(gray_model, gray))
    assert predict_mask(gray_model, image).shape == (33, 47)  # colour converted to luminance


def assert_logits_close(actual, expected):
    """Equal up to the resizing libraries' round-off: 1e-3 of the largest logit."""
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-3 * np.abs(expected).max())


def assert_logits_differ(a, b):
    assert np.abs(a - b).max() > 0.05 * np.abs(b).max(), "the option changed nothing"


def test_input_size_resizes_and_brings_logits_back(model, image):
    logits = predict_logits(model, image[None], input_size=(32, 64))
    assert logits.shape == (1, 33, 47, 11) and logits.dtype == np.float32
    assert_logits_close(logits, reference.tta_logits(model, image[None], input_size=(32, 64)))
    assert_logits_differ(logits, predict_logits(model, image[None]))

    mask = predict_mask(model, image, input_size=(32, 64))
    assert mask.shape == (33, 47) and mask.dtype == np.uint8
    np.testing.assert_array_equal(mask, logits[0].argmax(-1))
    # input_size equal to the image's own size changes nothing.
    np.testing.assert_array_equal(predict_mask(model, image, input_size=(33, 47)), predict_mask(model, image))


def test_flip_averages_with_the_mirrored_prediction(model, image):
    x = image[None].astype("float32")
    plain = model.predict(x, verbose=0)
    mirrored = model.predict(np.ascontiguousarray(x[:, :, ::-1]), verbose=0)[:, :, ::-1]
    assert_logits_differ(mirrored, plain)  # the model is not mirror-symmetric, so flipping must show
    logits = predict_logits(model, image[None], flip=True)
    assert_logits_close(logits, (plain + mirrored) / 2)
    assert_logits_differ(logits, plain)
    # A mirror-symmetric image gets a mirror-symmetric prediction, which one pass does not give.
    symmetric = np.concatenate([image, image[:, ::-1]], axis=1)
    sym_logits = predict_logits(model, symmetric[None], flip=True)
    np.testing.assert_allclose(sym_logits, sym_logits[:, :, ::-1], rtol=1e-4, atol=1e-3)
    assert not np.allclose(predict_logits(model, symmetric[None]), sym_logits, atol=1e-3)
    mask = predict_mask(model, image, flip=True, input_size=(32, 64))
    expected = reference.tta_logits(model, image[None], flip=True, input_size=(32, 64))[0].argmax(-1)
    assert mask.shape == (33, 47) and (mask == expected).mean() > 0.99


def test_scales_average_the_logits_of_each_input_scale(model, image):
    single = predict_logits(model, image[None])
    scaled = predict_logits(model, image[None], scales=(1.0, 1.25, 0.75))
    assert_logits_close(scaled, reference.tta_logits(model, image[None], scales=(1.0, 1.25, 0.75)))
    assert_logits_differ(scaled, single)
    # Scales multiply input_size; with flip every scale is flip-averaged.
    options = dict(input_size=(32, 64), scales=(1, 1.5), flip=True)
    both = predict_logits(model, image[None], **options)
    assert_logits_close(both, reference.tta_logits(model, image[None], **options))
    assert_logits_differ(both, predict_logits(model, image[None], input_size=(32, 64), scales=(1, 1.5)))
    # One scale of 1 (a number or a list) is the plain prediction.
    np.testing.assert_array_equal(predict_mask(model, image, scales=np.float32(1)), predict_mask(model, image))
    masks = predict_masks(model, [image, image[:20]], scales=[1.0, 1.25])
    assert [m.shape for m in masks] == [(33, 47), (20, 47)]
    np.testing.assert_array_equal(masks[0], predict_mask(model, image, scales=(1.0, 1.25)))


@pytest.mark.parametrize("bad", [(), (0,), (1.0, -0.5), (float("nan"),), -1])
def test_bad_scales_raise_value_error(model, image, bad):
    with pytest.raises(ValueError, match="scales must be one or more positive factors"):
        predict_mask(model, image, scales=bad)


@pytest.mark.parametrize("oversize", ["downscale", "tiles"])
def test_an_image_over_the_budget_gives_a_mask_of_its_own_size(model, oversize):
    big = rng.integers(0, 256, size=(100, 120, 3), dtype=np.uint8)
    budget = dict(max_pixels=5000, oversize=oversize)
    mask = predict_mask(model, big, **budget)
    assert mask.shape == (100, 120) and mask.dtype == np.uint8 and mask.max() < 11
    assert predict_mask(model, big, input_size=(50, 60), scales=(1, 2), **budget).shape == (100, 120)  # 2x over
    assert [m.shape for m in predict_masks(model, [big, big[:40]], **budget)] == [(100, 120), (40, 120)]


def test_downscale_predicts_at_the_largest_size_within_the_budget(model):
    big = rng.integers(0, 256, size=(100, 120, 3), dtype=np.uint8)
    assert fit_pixels((100, 120), 5000) == (64, 77)
    np.testing.assert_array_equal(predict_mask(model, big, max_pixels=5000),  # the default way
                                  predict_mask(model, big, input_size=(64, 77)))


def test_tiles_cover_the_image_within_the_budget():
    for size, budget in [((100, 120), 5000), ((3000, 4000), 2048 * 2048), ((50, 9000), 100_000), ((40, 40), 100)]:
        covered = np.zeros(size, int)
        for (top, height), (left, width) in tile_grid(size, budget):
            assert height * width <= max(budget, 32 * 32) and top + height <= size[0] and left + width <= size[1]
            covered[top : top + height, left : left + width] += 1
        assert covered.min() >= 1


def test_a_tiled_prediction_matches_the_untiled_one_on_most_pixels(model, camvid_root):
    frame = load_image(sorted((camvid_root / "val").glob("*.png"))[0])  # 360x480
    whole = predict_mask(model, frame)
    tiled = predict_mask(model, frame, max_pixels=256 * 320, oversize="tiles")  # 2 x 2 tiles of 256x320
    assert len(tile_grid(frame.shape[:2], 256 * 320)) == 4
    agreement = (tiled == whole).mean()  # 0.926 on an AMD EPYC; a frame's largest class here: 0.76
    assert agreement > 0.9 and np.unique(whole).size >= 2


@pytest.mark.parametrize("bad, match", [({"oversize": "crop"}, "Unknown oversize 'crop'"),
                                        ({"max_pixels": 0}, "max_pixels must be an integer >= 1")])
def test_bad_budget_arguments_raise_value_error(model, image, bad, match):
    with pytest.raises(ValueError, match=match):
        predict_mask(model, image, **bad)


def test_predict_cli_writes_the_outputs_of_a_photo_over_the_budget(model, tmp_path, capsys):
    photo = street_images()[0]  # a real 960x540 photo, over a budget of 0.1 megapixel
    model_path = tmp_path / "fcn8s.keras"
    model.save(model_path)
    out = tmp_path / "out"
    for way in ("downscale", "tiles"):
        argv = [str(model_path), str(photo), "--out", str(out), "--max-pixels", "100000", "--oversize", way,
                "--quiet", "--overwrite"]  # fmt: skip
        assert main_predict(argv) == 0
        mask = np.asarray(Image.open(out / "masks" / f"{photo.stem}.png"))
        assert mask.shape == load_image(photo).shape[:2] and mask.max() < 11
        assert Image.open(out / "overlays" / f"{photo.stem}.png").size == Image.open(photo).size
    with pytest.raises(SystemExit) as refused:  # refused with the other argument errors, before any work
        main_predict([str(model_path), str(photo), "--out", str(out), "--max-pixels", "0", "--overwrite"])
    assert refused.value.code == 2
    assert "error: max_pixels must be an integer >= 1, got 0." in capsys.readouterr().err


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((1, 8, 8, 3), np.uint8),  # a batch is not an image
        np.zeros(8, np.uint8),
        np.zeros((8, 8, 2), np.uint8),
        np.zeros((0, 8, 3), np.uint8),
        np.full((8, 8, 3), np.nan, np.float32),
        np.full((8, 8, 3), -4, np.int32),
    ],
)
def test_bad_arrays_raise_value_error(model, bad):
    with pytest.raises(ValueError):
        predict_mask(model, bad)


def test_predict_masks_keeps_order_for_mixed_sizes(model, image, tmp_path):
    path = tmp_path / "small.png"
    small = rng.integers(0, 256, size=(20, 30, 3), dtype=np.uint8)
    Image.fromarray(small).save(path)
    other = rng.integers(0, 256, size=(33, 47, 3), dtype=np.uint8)
    images = [image, small, other, path, image[..., 0]]
    masks = predict_masks(model, images, batch_size=2)
    assert [m.shape for m in masks] == [(33, 47), (20, 30), (33, 47), (20, 30), (33, 47)]
    for got, single in zip(masks, images):
        np.testing.assert_array_equal(got, predict_mask(model, single))
    np.testing.assert_array_equal(masks[1], masks[3])  # same pixels, array or file


def check_scores(scores, num_images, masks):
    assert {"mean_iou", "frequency_weighted_iou", "pixel_accuracy", "iou_per_class", "confusion_matrix",
            "num_images", "split", "dataset"} <= set(scores)
    assert scores["num_images"] == num_images
    for key in ("mean_iou", "frequency_weighted_iou", "pixel_accuracy"):
        assert 0 <= scores[key] <= 1
    assert all(v is None or 0 <= v <= 1 for v in scores["iou_per_class"].values())
    # Scored at the original resolution: every non-void pixel of the untouched masks counts once.
    assert np.sum(scores["confusion_matrix"]) == sum(np.sum(m != VOID) for m in masks)


@pytest.mark.parametrize("tta", [{}, {"flip": True}, {"scales": (1.0, 1.25), "flip": True}])
def test_evaluate_on_real_camvid(model, camvid_root, tta):
    scores = evaluate(model, camvid_root, "val", dataset="camvid", input_size=(64, 96), batch_size=2, max_images=3,
                      **tta)  # fmt: skip
    samples = read_split(camvid_root, "val", "camvid")[:3]
    masks = [load_mask(s.mask_path, "camvid") for s in samples]
    check_scores(scores, 3, masks)
    assert scores["dataset"] == "camvid" and scores["split"] == "val"
    assert list(scores["iou_per_class"])[:3] == ["Sky", "Building", "Pole"]

    # The confusion matrix is that of the augmented prediction, computed here from its definition.
    images = np.stack([load_image(s.image_path) for s in samples])

    def reference_cm(**options):
        logits = reference.tta_logits(model, images, input_size=(64, 96), **options)
        return reference.confusion(masks, logits.argmax(-1), 11)
    expected = reference_cm(**tta)
    tolerance = 0.001 * expected.sum()  # pixels the resizing libraries' round-off may flip
    assert reference.pixels_apart(scores["confusion_matrix"], expected) <= tolerance
    if tta:  # and the augmentation shows: twice the tolerance apart, so leaving it out would be caught
        assert reference.pixels_apart(expected, reference_cm()) > 2 * tolerance


def test_evaluate_on_the_voc_sample(vgg_weights):
    voc_model = build_fcn("fcn32s", num_classes=21, fc_units=64, backbone_weights=vgg_weights)
    scores = evaluate(voc_model, VOC_SAMPLE, "val", dataset="voc2007", input_size=(64, 64))
    check_scores(scores, 1, [load_mask(VOC_SAMPLE / "SegmentationClass" / "001763.png")])
    assert len(scores["iou_per_class"]) == 21
