"""Tests for fcnseg.datasets.pipeline: resizing, augmentation alignment, batching and errors while iterating.

Real files only: CamVid (``CAMVID_ROOT``, skipped when unset), the VOC sample
committed in data/sample, and small folder datasets written into ``tmp_path``.
Image sizes stay tiny so the file runs in seconds on two CPU cores.
"""

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from fcnseg.datasets import VOC_COLORMAP, VOID, folder_dataset, load_image, load_mask
from fcnseg.models.layers import IMAGENET_MEAN_RGB
from fcnseg.datasets.pipeline import (augment_pair, class_pixel_counts, jitter_colors, make_dataset,
                                     median_frequency_weights, resize_pair)

from fcnseg.datasets import SAMPLE_ROOT as SAMPLE_VOC
SAMPLE_IMAGE = SAMPLE_VOC / "JPEGImages" / "001763.jpg"
SAMPLE_MASK = SAMPLE_VOC / "SegmentationClass" / "001763.png"
TWO_CLASSES = folder_dataset(["background", "thing"], name="tiny")


def write_pair(root: Path, split: str, stem: str, image: np.ndarray, mask: np.ndarray) -> None:
    """One image (RGB array, written through OpenCV) and its grayscale index mask."""
    (root / split / "images").mkdir(parents=True, exist_ok=True)
    (root / split / "masks").mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(root / split / "images" / f"{stem}.png"), image[..., ::-1])
    Image.fromarray(mask.astype(np.uint8), "L").save(root / split / "masks" / f"{stem}.png")


def tiny_dataset(root: Path, n: int = 6, size=(24, 32)) -> Path:
    """A folder dataset whose images encode their masks (image = colormap[mask])."""
    rng = np.random.default_rng(0)
    for i in range(n):
        mask = rng.integers(0, 2, size, dtype=np.uint8)
        write_pair(root, "train", f"im{i}", VOC_COLORMAP[mask], mask)
    return root


# --- CamVid through the whole pipeline -----------------------------------------------------


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_camvid_splits_batch(camvid_root, split):
    ds = make_dataset(camvid_root, split, dataset="camvid", image_size=(36, 48), batch_size=4,
                      augment=split == "train", seed=0)  # fmt: skip
    for images, masks in ds.take(2):
        assert images.shape == (4, 36, 48, 3) and images.dtype == tf.float32
        assert masks.shape == (4, 36, 48) and masks.dtype == tf.int32
        assert set(np.unique(masks).tolist()) <= set(range(11)) | {VOID}
        assert 0 <= images.numpy().min() and images.numpy().max() <= 255


# --- Resizing --------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(37, 53), (401, 611), (3, 2)])
def test_resize_never_invents_labels(size):
    image, mask = load_image(SAMPLE_IMAGE), load_mask(SAMPLE_MASK)
    out_image, out_mask = resize_pair(image, mask, size)
    assert out_image.shape == (*size, 3) and out_mask.shape == size
    assert set(np.unique(out_mask).tolist()) <= set(np.unique(mask).tolist())


def test_resize_is_bilinear_for_images_nearest_for_masks():
    two = np.array([[0, 255]], np.uint8)
    image, mask = resize_pair(np.repeat(two[..., None], 3, -1), two, (1, 4))
    np.testing.assert_allclose(image[0, :, 0], [0, 63.75, 191.25, 255], atol=0.01)
    assert mask.numpy().tolist() == [[0, 0, 255, 255]]


# --- Augmentation ----------------------------------------------------------------------------


def uniform_3x3(mask: np.ndarray) -> np.ndarray:
    """Pixels whose whole 3x3 neighbourhood has their label (the border ring never: its
    neighbours outside the crop are unknown)."""
    padded = np.pad(mask.astype(np.int64), 1, constant_values=-1)
    same = np.ones(mask.shape, bool)
    for dy in range(3):
        for dx in range(3):
            same &= padded[dy : dy + mask.shape[0], dx : dx + mask.shape[1]] == mask
    return same


def test_augment_keeps_image_and_mask_aligned():
    rng = np.random.default_rng(1)
    mask = np.kron(rng.integers(0, 21, (6, 8)), np.ones((16, 16), np.int64)).astype(np.uint8)
    image = VOC_COLORMAP[mask]  # every pixel's colour says its label
    colours = VOC_COLORMAP.astype(np.float32)
    mean = np.array(IMAGENET_MEAN_RGB, np.float32)
    padded_some = False
    for seed in range(40):
        aug_image, aug_mask = augment_pair(image, mask, tf.constant([seed, 7]), image_size=(64, 64))
        aug_image, aug_mask = aug_image.numpy(), aug_mask.numpy()
        assert aug_image.shape == (64, 64, 3) and aug_mask.shape == (64, 64)
        labelled = (aug_mask != VOID) & uniform_3x3(aug_mask)
        dist = np.linalg.norm(aug_image[labelled][:, None] - colours[None], axis=-1)
        np.testing.assert_array_equal(dist.argmin(-1), aug_mask[labelled], err_msg=f"seed {seed}")
        assert dist.min(-1).max() < 2.0
        void = (aug_mask == VOID) & uniform_3x3(aug_mask)  # padding: the source has no void
        np.testing.assert_allclose(aug_image[void], np.broadcast_to(mean, aug_image[void].shape), atol=0.01)
        padded_some |= bool(void.any())
    assert padded_some  # scales below 1 pad with void


def test_color_jitter_changes_the_image_only():
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, (24, 32, 3)).astype(np.uint8)
    mask = rng.integers(0, 11, (24, 32)).astype(np.uint8)
    kwargs = dict(image_size=(24, 32), scale_range=(1.0, 1.0))
    for seed in range(5):
        plain_image, plain_mask = augment_pair(image, mask, tf.constant([seed, 3]), **kwargs)
        jit_image, jit_mask = augment_pair(image, mask, tf.constant([seed, 3]), color_jitter=0.4, **kwargs)
        again, _ = augment_pair(image, mask, tf.constant([seed, 3]), color_jitter=0.4, **kwargs)
        np.testing.assert_array_equal(jit_mask, plain_mask)  # geometry untouched
        np.testing.assert_array_equal(jit_image, again)  # stateless: same seed, same colours
        assert 0 <= float(tf.reduce_min(jit_image)) and float(tf.reduce_max(jit_image)) <= 255
        assert np.abs(jit_image.numpy() - plain_image.numpy()).mean() > 1.0


def test_jitter_colors_spans_its_factor_range():
    gray = tf.fill((4, 4, 3), 100.0)  # contrast and saturation leave a flat gray alone
    values = [float(jitter_colors(gray, tf.constant([s, 0]), strength=0.2)[0, 0, 0]) for s in range(200)]
    assert 80 <= min(values) < 84 and 116 < max(values) <= 120
    np.testing.assert_allclose(jitter_colors(gray, tf.constant([1, 0]), strength=0.0), gray)
    with pytest.raises(ValueError, match="strength"):
        jitter_colors(gray, tf.constant([1, 0]), strength=1.5)


def test_augment_flips_for_some_seeds_only():
    image = np.arange(8 * 8 * 3, dtype=np.uint8).reshape(8, 8, 3)
    mask = np.tile(np.arange(8, dtype=np.uint8), (8, 1))
    flipped = []
    for seed in range(20):
        out_image, out_mask = augment_pair(image, mask, tf.constant([seed, 0]), image_size=(8, 8),
                                           scale_range=(1.0, 1.0))  # fmt: skip
        flip = out_mask.numpy()[0, 0] == 7
        np.testing.assert_array_equal(out_mask, mask[:, ::-1] if flip else mask)
        np.testing.assert_allclose(out_image, image[:, ::-1] if flip else image, atol=0.01)
        flipped.append(flip)
    assert any(flipped) and not all(flipped)


def test_augment_is_deterministic_per_seed(tmp_path):
    root = tiny_dataset(tmp_path)

    def first(seed):
        ds = make_dataset(root, dataset=TWO_CLASSES, image_size=(16, 16), batch_size=3, augment=True, seed=seed)
        return [t.numpy() for t in next(iter(ds))]

    a, b, c = first(3), first(3), first(4)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_augment_needs_image_size(tmp_path):
    with pytest.raises(ValueError, match="augment=True needs an image_size"):
        make_dataset(tiny_dataset(tmp_path), dataset=TWO_CLASSES, image_size=None, augment=True)


# --- Batching --------------------------------------------------------------------------------


def test_one_hot_matches_sparse_and_void_is_all_zero():
    kwargs = dict(split="test", image_size=(45, 60), batch_size=1)
    images, sparse = next(iter(make_dataset(SAMPLE_VOC, **kwargs)))
    _, one_hot = next(iter(make_dataset(SAMPLE_VOC, one_hot=True, **kwargs)))
    sparse, one_hot = sparse.numpy(), one_hot.numpy()
    assert one_hot.shape == (1, 45, 60, 21) and one_hot.dtype == np.float32
    void = sparse == VOID
    assert void.any() and (~void).any()
    np.testing.assert_array_equal(one_hot.sum(-1), np.where(void, 0.0, 1.0))
    np.testing.assert_array_equal(one_hot.argmax(-1)[~void], sparse[~void])


def test_class_weights_are_per_pixel_weights_with_void_at_zero(camvid_root):
    """``class_weights="sqrt_median"``: a third element, each pixel weighing its class's
    square-rooted median-frequency weight over the split's pixels; void 0."""
    kwargs = dict(dataset="camvid", image_size=(45, 60), batch_size=4)
    expected = median_frequency_weights(class_pixel_counts(make_dataset(camvid_root, "val", **kwargs), 11), power=0.5)
    assert max(expected) > 1 > min(w for w in expected if w > 0)  # rare classes gain, common ones lose
    _, masks, weights = next(iter(make_dataset(camvid_root, "val", class_weights="sqrt_median", **kwargs)))
    masks, weights = masks.numpy(), weights.numpy()
    void = masks == VOID
    assert void.any() and (weights[void] == 0).all()
    np.testing.assert_allclose(weights[~void], expected[masks[~void]], rtol=1e-6)
    _, listed, listed_weights = next(iter(make_dataset(camvid_root, "val", class_weights=expected.tolist(), **kwargs)))
    np.testing.assert_array_equal(listed_weights.numpy(), weights)


def test_native_size_batches_are_padded_with_void(tmp_path):
    write_pair(tmp_path, "train", "a", np.full((10, 14, 3), 50, np.uint8), np.zeros((10, 14)))
    write_pair(tmp_path, "train", "b", np.full((12, 9, 3), 90, np.uint8), np.ones((12, 9)))
    images, masks = next(iter(make_dataset(tmp_path, dataset=TWO_CLASSES, image_size=None, batch_size=2)))
    assert images.shape == (2, 12, 14, 3) and masks.shape == (2, 12, 14)
    masks = masks.numpy()
    assert (masks[0, :10, :14] == 0).all() and (masks[0, 10:] == VOID).all()
    assert (masks[1, :12, :9] == 1).all() and (masks[1, :, 9:] == VOID).all()
    images = images.numpy()
    np.testing.assert_allclose(images[1, :12, :9], 90, atol=1e-4)
    np.testing.assert_allclose(images[1, :, 9:], np.broadcast_to(IMAGENET_MEAN_RGB, (12, 5, 3)), atol=1e-4)


def test_own_folder_dataset_with_custom_void(tmp_path):
    spec = folder_dataset(["background", "road", "car"], name="roads", void_label=9)
    mask = np.array([[0, 1, 2, 9]] * 4, np.uint8)
    for split in ("train", "val"):
        write_pair(tmp_path, split, "x", VOC_COLORMAP[mask % 9], mask)
    _, masks = next(iter(make_dataset(tmp_path, "val", dataset=spec, image_size=(4, 4), batch_size=1)))
    assert masks.numpy()[0].tolist() == [[0, 1, 2, VOID]] * 4


def copy_camvid(camvid_root, root: Path, count: int) -> Path:
    """The first `count` CamVid train frames and masks, copied (not linked) into `root`."""
    for folder in ("train", "trainannot"):
        (root / folder).mkdir(parents=True)
        for path in sorted((camvid_root / folder).glob("*.png"))[:count]:
            shutil.copy(path, root / folder / path.name)
    return root


def batches(ds):
    return [[t.numpy() for t in batch] for batch in ds]


@pytest.mark.parametrize("augment", [False, True])
def test_cache_serves_later_epochs_from_memory(camvid_root, tmp_path, augment):
    """cache=True (the command line's setting) decodes the files once: with them deleted after the
    first epoch, the next epochs still come, the same examples (reshuffled and re-augmented when augmenting)."""
    root = copy_camvid(camvid_root, tmp_path / "camvid", 4)
    kwargs = dict(dataset="camvid", image_size=(36, 48), batch_size=2, augment=augment, seed=0)
    cached = make_dataset(root, "train", cache=True, **kwargs)
    uncached = make_dataset(root, "train", **kwargs)
    first = batches(cached)
    batches(uncached)
    shutil.rmtree(root / "train")
    for _ in range(2):
        later = batches(cached)
        assert [b[0].shape for b in later] == [(2, 36, 48, 3)] * 2
        if not augment:
            for (images, masks), (images2, masks2) in zip(first, later):
                np.testing.assert_array_equal(images, images2)
                np.testing.assert_array_equal(masks, masks2)
    with pytest.raises((tf.errors.OpError, OSError, ValueError)):
        batches(uncached)  # without the cache the files are read again


@pytest.fixture(scope="module")
def five_frames(camvid_root, tmp_path_factory):
    return copy_camvid(camvid_root, tmp_path_factory.mktemp("five"), 5)


@pytest.mark.parametrize("drop_remainder, augment, sizes", [
    (None, False, [2, 2, 1]),  # default: keep the last, smaller batch for evaluation
    (None, True, [2, 2]),  # default when augmenting: fixed shapes for training
    (True, False, [2, 2]),
    (False, True, [2, 2, 1]),
])  # fmt: skip
def test_drop_remainder(five_frames, drop_remainder, augment, sizes):
    ds = make_dataset(five_frames, "train", dataset="camvid", image_size=(36, 48), batch_size=2, augment=augment, seed=0,
                      drop_remainder=drop_remainder)  # fmt: skip
    assert [len(images) for images, _ in batches(ds)] == sizes
    assert ds.element_spec[0].shape[0] == (2 if sizes[-1] == 2 else None)  # a static batch size when dropped


# --- Errors ----------------------------------------------------------------------------------


def test_size_mismatch_is_caught_before_training(tmp_path):
    root = tiny_dataset(tmp_path, n=2)
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(root / "train" / "masks" / "im1.png")
    with pytest.raises(ValueError, match=r"im1.png is 5x5 but its image .*im1.png is 32x24"):
        make_dataset(root, dataset=TWO_CLASSES, validate=True)


def test_corrupt_image_met_while_iterating_is_named(tmp_path):
    root = tiny_dataset(tmp_path, n=2)
    bad = root / "train" / "images" / "im1.png"
    bad.write_bytes(bad.read_bytes()[:60])  # header kept, pixel data cut
    ds = make_dataset(root, dataset=TWO_CLASSES, image_size=(8, 8), batch_size=1, validate=False)
    with pytest.raises((tf.errors.OpError, ValueError)) as info:
        for _ in ds:
            pass
    assert str(bad) in str(info.value)
    assert "corrupt" in str(info.value)


def test_validate_names_an_unreadable_image(tmp_path):
    voc = Path(shutil.copytree(SAMPLE_VOC, tmp_path / "voc"))  # never damage data/sample itself
    (voc / "JPEGImages" / "001763.jpg").write_bytes(b"\xff\xd8\xff")
    with pytest.raises(ValueError, match="Cannot read .*001763.jpg"):
        make_dataset(voc, "test", batch_size=1, image_size=(8, 8))
