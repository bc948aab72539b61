"""Your own data in one call (issue 37): folders of grayscale images with binary masks of 0
and 255, made here from a few real CamVid frames (road: 255, everything else: 0), read by
`folder_dataset` as class ids (refused, naming ``mask_values``), through ``mask_values``, and
as colour masks; `check_dataset` on the real VOC 2007 and CamVid; ``fcnseg-train --dataset
folder`` end to end. Crops are 96x128 so that the file runs in seconds on two CPU cores."""

import itertools
import json
import re
import shutil

import cv2
import numpy as np
import pytest
from PIL import Image

from fcnseg.cli import main_train, run_evaluate, run_train
from fcnseg.datasets import (VOID, check_dataset, describe_dataset, folder_dataset, load_mask,
                             read_split)  # fmt: skip
from fcnseg.options import Options
from fcnseg.datasets.pipeline import make_dataset

CLASSES = ["background", "road"]
BINARY = folder_dataset(CLASSES, mask_values={0: 0, 255: 1})
ROAD = 3  # CamVid's class id
COLORS = np.array([(0, 0, 0), (128, 64, 128)], np.uint8)  # background, road (CamVid's road colour)
CROP = (slice(200, 296), slice(100, 228))  # 96x128 of the lower half: road and not road


def write_roads(camvid_root, root, splits=(("train", 4), ("val", 2)), color=False):
    """`root/<split>/images/*.png` (grayscale crops of CamVid frames) and `masks/*.png` (road 255,
    else 0; with `color`, RGB masks in `COLORS`). Returns the binary labels by mask path."""
    labels = {}
    frames = iter(sorted((camvid_root / "train").glob("*.png")))  # each frame in one split
    for split, count in splits:
        (root / split / "images").mkdir(parents=True)
        (root / split / "masks").mkdir(parents=True)
        for frame in itertools.islice(frames, count):
            gray = cv2.cvtColor(cv2.imread(str(frame)), cv2.COLOR_BGR2GRAY)[CROP]
            road = (np.array(Image.open(camvid_root / "trainannot" / frame.name))[CROP] == ROAD).astype(np.uint8)
            assert 0 < road.mean() < 1, frame  # both classes in every crop
            cv2.imwrite(str(root / split / "images" / frame.name), gray)
            path = root / split / "masks" / frame.name
            Image.fromarray(COLORS[road] if color else road * 255).save(path)
            labels[path] = road
    return labels


@pytest.fixture(scope="module")
def roads(camvid_root, tmp_path_factory):
    root = tmp_path_factory.mktemp("roads")
    return root, write_roads(camvid_root, root)


def test_binary_masks_read_as_class_ids_stop_with_the_mask_values_to_pass(roads):
    """The issue's story: 255 is void in this package, so 0/255 masks read as class ids would
    train on background alone; the check (which make_dataset runs) says what to pass instead."""
    root, _ = roads
    as_ids = folder_dataset(CLASSES)
    for check in (lambda: check_dataset(root, "train", as_ids),
                  lambda: make_dataset(root, "train", dataset=as_ids, image_size=(32, 32))):  # fmt: skip
        with pytest.raises(ValueError) as info:
            check()
        message = str(info.value)
        assert "['road'] never appear" in message and "raw values are [0, 255]" in message
        assert "mask_values={0: 0, 255: 1}" in message and "--mask-values 0:0 255:1" in message
        assert re.search(r"train/masks/\w+\.png", message) and "\n" not in message
    summary = describe_dataset(root, "train", as_ids)  # describing never stops
    assert summary.missing == ["road"] and 0 < summary.void_share < 1 and summary.raw_values.keys() == {0, 255}


def test_mask_values_give_both_classes_and_no_void(roads):
    root, labels = roads
    summary = check_dataset(root, "train", BINARY)
    assert summary.void_share == 0 and summary.missing == [] and summary.sizes == {(128, 96): 4}
    assert "road" in str(summary) and "void" in str(summary)
    ds = make_dataset(root, "train", dataset=BINARY, image_size=None, batch_size=4)
    images, masks = (t.numpy() for t in next(iter(ds)))
    samples = read_split(root, "train", BINARY)
    np.testing.assert_array_equal(masks, np.stack([labels[s.mask_path] for s in samples]))
    assert set(np.unique(masks)) == {0, 1}
    gray = np.stack([cv2.imread(str(s.image_path), cv2.IMREAD_UNCHANGED) for s in samples])
    assert gray.ndim == 3  # the files are grayscale; the 3-channel model gets them repeated
    np.testing.assert_array_equal(images, np.repeat(gray[..., None], 3, axis=-1))
    # Augmented training batches hold both classes, void only where the crop pads.
    _, masks = next(iter(make_dataset(root, "train", dataset=BINARY, image_size=(64, 64), batch_size=4,
                                      augment=True, scale_range=(1.0, 1.0), seed=0)))  # fmt: skip
    assert set(np.unique(masks.numpy())) == {0, 1}


def test_other_raw_values_become_void(tmp_path):
    path = tmp_path / "m.png"
    Image.fromarray(np.array([[0, 255, 128, 7]], np.uint8)).save(path)
    assert load_mask(path, BINARY).tolist() == [[0, 1, VOID, VOID]]
    with_void = folder_dataset(CLASSES, mask_values={0: 0, 255: 1, 128: VOID})
    assert load_mask(path, with_void).tolist() == [[0, 1, VOID, VOID]]


def test_colour_masks_decode_through_the_colormap(camvid_root, tmp_path):
    labels = write_roads(camvid_root, tmp_path, splits=(("train", 2),), color=True)
    spec = folder_dataset(CLASSES, colormap=COLORS, mask_format="color")
    odd = next(iter(labels))  # a colour of no class: void
    rgb = np.array(Image.open(odd))
    rgb[:5, :5] = (1, 2, 3)
    Image.fromarray(rgb).save(odd)
    expected = labels[odd].copy()
    expected[:5, :5] = VOID
    np.testing.assert_array_equal(load_mask(odd, spec), expected)
    assert check_dataset(tmp_path, "train", spec).missing == []
    _, masks = next(iter(make_dataset(tmp_path, "train", dataset=spec, image_size=None, batch_size=1)))
    assert set(np.unique(masks.numpy())) <= {0, 1, VOID}
    with pytest.raises(ValueError, match=r"has mode RGB.*mask_format='color'"):  # read as class ids
        check_dataset(tmp_path, "train", folder_dataset(CLASSES))
    with pytest.raises(ValueError, match=r"never appear.*\(0, 0, 0\).*not the colours of the colormap"):
        check_dataset(tmp_path, "train", folder_dataset(CLASSES, colormap=[(0, 0, 0), (255, 0, 0)],
                                                        mask_format="color"))  # fmt: skip


def test_a_mask_not_its_images_size_is_named(roads, tmp_path):
    root, labels = roads
    bad = sorted(labels)[1]
    own = tmp_path / "own"
    shutil.copytree(root / "train", own / "train")
    moved = own / "train" / "masks" / bad.name
    Image.fromarray(np.zeros((90, 128), np.uint8)).save(moved)
    with pytest.raises(ValueError, match=rf"Mask {re.escape(str(moved))} is 128x90 but its image .* is 128x96"):
        check_dataset(own, "train", BINARY)


def test_index_values_of_no_class_name_the_file_and_the_mapping(tmp_path):
    for kind in ("images", "masks"):
        (tmp_path / "train" / kind).mkdir(parents=True)
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "train" / "images" / "a.png")
    Image.fromarray(np.array([[0, 128, 0, 128]] * 4, np.uint8)).save(tmp_path / "train" / "masks" / "a.png")
    with pytest.raises(ValueError, match=r"a\.png has values \[128\].*mask_values=\{0: 0, 128: 1\}"):
        check_dataset(tmp_path, "train", folder_dataset(CLASSES))


@pytest.mark.parametrize("dataset, split", [("camvid", "train"), ("voc2007", "train")])
def test_the_built_in_datasets_pass_the_check(dataset, split, camvid_root, voc_root):
    root = {"camvid": camvid_root, "voc2007": voc_root}[dataset]
    summary = check_dataset(root, split, dataset)
    assert summary.missing == [] and summary.void_share < 0.1
    assert summary.num_masks == {"camvid": 367, "voc2007": 209}[dataset]
    assert sum(summary.class_shares.values()) + summary.void_share == pytest.approx(1.0)


def test_options_take_your_own_data_as_the_notebook_and_papermill_give_it(roads):
    root, _ = roads
    options = Options(dataset="folder", classes=CLASSES, mask_values={"0": 0, "255": 1})  # JSON keys are strings
    assert options.mask_values == ((0, 0), (255, 1))
    spec = options.spec(root)
    assert spec.classes == tuple(CLASSES) and spec.mask_values == BINARY.mask_values and spec.name == root.name
    with pytest.raises(ValueError, match="classes and mask_values describe your own data"):
        Options(dataset="camvid", mask_values={0: 0, 255: 1})
    with pytest.raises(FileNotFoundError, match="classes.txt"):
        Options(dataset="folder").spec(root)  # no classes given, no classes.txt
    with pytest.raises(ValueError, match="needs the folder of your data"):
        Options(dataset="folder", classes=CLASSES).spec(None)


def test_fcnseg_train_on_a_folder_trains_and_scores(roads, tmp_path, capsys):
    """``fcnseg-train --dataset folder``: without --mask-values one line naming it; with it, one
    epoch with the dice + cross-entropy loss, scored on val; ``fcnseg-evaluate`` with the classes
    from classes.txt gives the same scores."""
    root, _ = roads
    quick = ["--epochs", "1", "--image-size", "32", "32", "--batch-size", "2", "--fc-units", "8",
             "--backbone-weights", "none", "--scale-range", "1", "1", "--precision", "float32"]  # fmt: skip
    base = ["--dataset", "folder", "--root", str(root), "--classes", *CLASSES, *quick]
    assert main_train([*base, "--out", str(tmp_path / "refused")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "--mask-values 0:0 255:1" in err

    out = tmp_path / "run"
    metrics = run_train([*base, "--mask-values", "0:0", "255:1", "--loss", "dice_ce", "--out", str(out)])
    assert metrics["dataset"] == root.name and metrics["split"] == "val" and metrics["num_images"] == 2
    assert set(metrics["iou_per_class"]) == set(CLASSES) and 0 <= metrics["mean_iou"] <= 1
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["mean_iou"] == metrics["mean_iou"] and saved["parameters"]["loss"] == "dice_ce"
    assert saved["parameters"]["mask_values"] == [[0, 0], [255, 1]] and saved["parameters"]["classes"] == CLASSES

    (root / "classes.txt").write_text("background\nroad\n")
    try:
        scores = run_evaluate([str(out / "best.keras"), "--dataset", "folder", "--root", str(root), "--mask-values",
                               "0:0", "255:1", "--precision", "float32"])  # fmt: skip
    finally:
        (root / "classes.txt").unlink()
    assert scores["confusion_matrix"] == metrics["confusion_matrix"]


def test_a_bad_mask_value_flag_is_one_line(capsys):
    with pytest.raises(SystemExit) as info:
        main_train(["--dataset", "folder", "--classes", *CLASSES, "--mask-values", "0:x"])
    assert info.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert errors == ["fcnseg-train: error: argument --mask-values: '0:x' is not RAW:CLASS, two integers such as "
                      "255:1 (e.g. --mask-values 0:0 255:1)"]
