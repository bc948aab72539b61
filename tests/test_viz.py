"""Tests for fcnseg.figures.viz: colour masks, overlays and headless figures (fast, no TensorFlow).

The real PASCAL VOC example 001763 is used when ``VOC_ROOT`` points at
``.../VOCdevkit/VOC2007``; those tests are skipped otherwise.
"""

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

from fcnseg.datasets import (
    CAMVID_CLASSES,
    CAMVID_COLORMAP,
    VOC_CLASSES,
    VOC_COLORMAP,
    load_image,
    load_mask,
)
from fcnseg.figures.viz import (
    VOID_COLOR,
    add_legend,
    class_mask_overlay,
    colorize,
    legend_handles,
    overlay,
    save_figure,
    show_predictions,
)
from fcnseg.figures.plots import plot_confusion_matrix, plot_history, plot_iou_per_class

EXAMPLE_ID = "001763"  # dog and cat on a sofa: classes 0, 8, 12, 18, 20 and void


@pytest.fixture(scope="module")
def voc_example():
    root = os.environ.get("VOC_ROOT")
    if not root:
        pytest.skip("VOC_ROOT is not set: no real PASCAL VOC example to draw.")
    image_path = Path(root) / "JPEGImages" / f"{EXAMPLE_ID}.jpg"
    mask_path = Path(root) / "SegmentationClass" / f"{EXAMPLE_ID}.png"
    if not (image_path.is_file() and mask_path.is_file()):
        pytest.skip(f"VOC example {EXAMPLE_ID} not found under VOC_ROOT={root}.")
    return load_image(image_path), load_mask(mask_path)


@pytest.fixture
def synthetic():
    """A random 6x8 image and a mask holding background, cat (8), person (15) and void."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    mask = np.zeros((6, 8), np.uint8)
    mask[1:3, 1:4] = 8
    mask[3:, 5:] = 15
    mask[0, :] = 255
    return image, mask


@pytest.fixture
def no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


# --- colorize --------------------------------------------------------------


def test_colorize_maps_ids_to_colormap_rows_and_void(synthetic):
    _, mask = synthetic
    rgb = colorize(mask)
    assert rgb.shape == (6, 8, 3) and rgb.dtype == np.uint8
    for class_id in (0, 8, 15):
        assert (rgb[mask == class_id] == VOC_COLORMAP[class_id]).all()
    assert (rgb[mask == 255] == VOID_COLOR).all()


def test_colorize_custom_colormap_and_void_colour():
    rgb = colorize(np.array([[3, 255]]), CAMVID_COLORMAP, void_color=(1, 2, 3))
    assert rgb[0].tolist() == [CAMVID_COLORMAP[3].tolist(), [1, 2, 3]]


@pytest.mark.parametrize("bad_id", [21, 254, -1])
def test_colorize_rejects_ids_without_colour(bad_id):
    with pytest.raises(ValueError, match=rf"\[{bad_id}\].*21 colours"):
        colorize(np.array([[0, bad_id]], np.int64))


def test_colorize_rejects_scores_and_float_masks():
    with pytest.raises(ValueError, match="shape"):
        colorize(np.zeros((2, 2, 21)))
    with pytest.raises(ValueError, match="integer class ids"):
        colorize(np.zeros((2, 2), np.float32))


def test_colorize_real_voc_mask(voc_example):
    _, mask = voc_example
    rgb = colorize(mask)
    assert sorted(np.unique(mask).tolist()) == [0, 8, 12, 18, 20, 255]
    for class_id in (8, 12, 18, 20):
        assert (rgb[mask == class_id] == VOC_COLORMAP[class_id]).all()
    assert (rgb[mask == 255] == VOID_COLOR).all()


# --- overlay ---------------------------------------------------------------


def test_overlay_alpha_extremes(synthetic):
    image, mask = synthetic
    assert np.array_equal(overlay(image, mask, alpha=0.0), image)
    assert np.array_equal(overlay(image, mask, alpha=1.0), colorize(mask))


def test_overlay_ignored_ids_keep_the_image(synthetic):
    image, mask = synthetic
    out = overlay(image, mask, alpha=1.0, ignore=(0, 255))
    painted = np.isin(mask, (8, 15))
    assert np.array_equal(out[~painted], image[~painted])
    assert np.array_equal(out[painted], colorize(mask)[painted])


def test_overlay_blends_halfway(synthetic):
    image, mask = synthetic
    expected = np.rint((image.astype(float) + colorize(mask)) / 2)
    assert np.abs(overlay(image, mask).astype(float) - expected).max() <= 1


def test_overlay_size_mismatch_is_a_clear_error(synthetic):
    image, mask = synthetic
    with pytest.raises(ValueError, match=r"mask is 7x6 but the image is 8x6"):
        overlay(image, mask[:, :7])


def test_overlay_real_example(voc_example):
    image, mask = voc_example
    out = overlay(image, mask, alpha=0.5)
    assert out.shape == image.shape and out.dtype == np.uint8


# --- class_mask_overlay ----------------------------------------------------


def test_class_mask_overlay_tints_class_and_dims_the_rest(synthetic):
    image, mask = synthetic
    out = class_mask_overlay(image, mask, 8, color=(255, 0, 0), alpha=0.6, dim=0.35)
    inside = mask == 8
    tinted = 0.4 * image[inside].astype(float) + 0.6 * np.array([255, 0, 0])
    assert np.abs(out[inside] - tinted).max() <= 1
    assert np.abs(out[~inside] - 0.35 * image[~inside].astype(float)).max() <= 1


def test_class_mask_overlay_on_flat_grey_image():
    image = np.full((2, 2, 3), 100, np.uint8)
    mask = np.array([[15, 0], [0, 15]])
    out = class_mask_overlay(image, mask, 15, color=(0, 255, 0), alpha=0.5, dim=0.5)
    assert out[0, 0].tolist() == [50, 178, 50]  # half grey, half green: brighter green
    assert out[0, 1].tolist() == [50, 50, 50]  # dimmed to half


def test_class_mask_overlay_soft_scores(synthetic):
    image, mask = synthetic
    one_hot = np.eye(21, dtype=np.float32)[np.where(mask == 255, 0, mask)]
    hard = class_mask_overlay(image, np.where(mask == 255, 0, mask), 15)
    assert np.array_equal(class_mask_overlay(image, one_hot, 15), hard)
    half = class_mask_overlay(image, one_hot * 0.5, 15)
    inside = mask == 15
    expected = (hard[inside].astype(float) + np.rint(0.35 * image[inside])) / 2
    assert np.abs(half[inside] - expected).max() <= 1


def test_class_mask_overlay_rejects_bad_scores(synthetic):
    image, mask = synthetic
    with pytest.raises(ValueError, match="not a channel"):
        class_mask_overlay(image, np.zeros((6, 8, 3)), 5)
    with pytest.raises(ValueError, match="softmax"):
        class_mask_overlay(image, np.full((6, 8, 3), 4.0), 1)


# --- legends and prediction grids ------------------------------------------


def test_legend_lists_only_present_classes(synthetic):
    _, mask = synthetic
    assert [h.get_label() for h in legend_handles([15, 0, 15])] == ["background", "person"]
    fig = Figure()
    legend = add_legend(fig.subplots(), mask)
    assert [t.get_text() for t in legend.get_texts()] == ["background", "cat", "person", "void"]


def test_legend_rejects_ids_beyond_the_classes():
    with pytest.raises(ValueError, match=r"\[11\]"):
        legend_handles([11], classes=CAMVID_CLASSES, colormap=CAMVID_COLORMAP)


def test_show_predictions_with_and_without_masks(synthetic):
    image, mask = synthetic
    predictions = np.stack([mask, np.zeros_like(mask)])
    fig = show_predictions([image, image], [mask, mask], predictions, titles=["a", "b"])
    assert isinstance(fig, Figure) and len(fig.axes) == 8
    assert [ax.get_title() for ax in fig.axes[:4]] == ["a", "ground truth", "prediction", "overlay"]
    scores = np.eye(21, dtype=np.float32)[np.where(mask == 255, 0, mask)][None]
    fig = show_predictions(image[None], None, scores)
    assert len(fig.axes) == 3
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["background", "cat", "person"]


def test_show_predictions_checks_lengths(synthetic):
    image, mask = synthetic
    with pytest.raises(ValueError, match="2 images but 1 predictions"):
        show_predictions([image, image], None, [mask])


def test_show_predictions_real_example_renders(voc_example, tmp_path):
    image, mask = voc_example
    prediction = np.where(mask == 255, 0, mask)
    path = save_figure(show_predictions([image], [mask], [prediction]), tmp_path / "grid.png")
    with Image.open(path) as im:
        assert im.width > im.height > 100


# --- training and evaluation plots ----------------------------------------

HISTORY = {
    "loss": [1.2, 0.8, 0.6],
    "val_loss": [1.3, 0.9, 0.95],
    "mean_iou": [0.2, 0.4, 0.5],
    "val_mean_iou": [0.18, 0.3, 0.28],
    "learning_rate": [1e-3, 1e-3, 1e-4],
}


def _labels(ax):
    return [line.get_label() for line in ax.get_lines()]


def test_plot_history_from_dict():
    fig = plot_history(HISTORY)
    assert [ax.get_title() for ax in fig.axes] == ["loss", "metrics", "learning rate"]
    assert _labels(fig.axes[1]) == ["mean_iou", "val_mean_iou"]
    assert "best val_loss 0.9" in _labels(fig.axes[0])


def test_plot_history_from_csv_logger_file(tmp_path):
    csv = tmp_path / "log.csv"
    csv.write_text("epoch,learning_rate,loss,mean_iou,val_loss,val_mean_iou\n"
                   "0,0.001,1.2,0.2,1.3,0.18\n1,0.001,0.8,0.4,0.9,0.3\n")  # fmt: skip
    fig = plot_history(csv)
    assert len(fig.axes) == 3
    assert fig.axes[0].get_lines()[0].get_xdata().tolist() == [1, 2]
    loss_only = plot_history({"loss": [1.0, 0.5]})
    assert [ax.get_title() for ax in loss_only.axes] == ["loss"]


def test_plot_history_of_two_stages_numbers_the_epochs_on(tmp_path):
    first, second = tmp_path / "stage1.csv", tmp_path / "history.csv"
    first.write_text("epoch,learning_rate,loss,val_mean_iou\n0,0.001,1.2,0.18\n1,0.0005,0.8,0.3\n")
    second.write_text("epoch,learning_rate,loss,val_mean_iou\n0,0.0002,0.7,0.35\n")
    fig = plot_history([first, second])
    loss = fig.axes[0].get_lines()[0]
    assert loss.get_xdata().tolist() == [1, 2, 3] and loss.get_ydata().tolist() == [1.2, 0.8, 0.7]
    assert fig.axes[-1].get_lines()[0].get_ydata().tolist() == [0.001, 0.0005, 0.0002]


def test_plot_history_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        plot_history(tmp_path / "missing.csv")
    with pytest.raises(ValueError, match="different lengths"):
        plot_history({"loss": [1.0, 0.5], "val_loss": [1.0]})


def test_plot_iou_per_class_with_nan(no_warnings):
    iou = [0.9, float("nan"), 0.5]
    fig = plot_iou_per_class(iou, ["background", "cat", "dog"])
    ax = fig.axes[0]
    assert "n/a" in [t.get_text() for t in ax.texts]
    assert ax.get_title() == "IoU per class (mean 0.700)"
    assert ax.get_lines()[0].get_xdata()[0] == pytest.approx(0.7)
    by_name = plot_iou_per_class({"Sky": 0.8, "Road": float("nan")}, title="CamVid val")
    assert by_name.axes[0].get_title() == "CamVid val (mean 0.800)"
    all_nan = plot_iou_per_class([float("nan")] * 2, ["a", "b"])
    assert all_nan.axes[0].get_title() == "IoU per class (mean n/a)"


def test_plot_confusion_matrix_zero_row_no_warning(no_warnings):
    cm = np.array([[8, 2, 0], [0, 0, 0], [1, 0, 3]])
    fig = plot_confusion_matrix(cm, ["background", "cat", "dog"])
    shown = np.asarray(fig.axes[0].images[0].get_array())
    assert shown.tolist() == [[0.8, 0.2, 0.0], [0.0, 0.0, 0.0], [0.25, 0.0, 0.75]]
    assert len(fig.axes) == 2  # matrix and colorbar
    counts = plot_confusion_matrix(cm, ["background", "cat", "dog"], normalize=False)
    assert np.asarray(counts.axes[0].images[0].get_array()).max() == 8
    with pytest.raises(ValueError, match="square"):
        plot_confusion_matrix(cm, VOC_CLASSES)


# --- save_figure -----------------------------------------------------------


def test_save_figure_writes_png_atomically(tmp_path):
    target = tmp_path / "deep" / "er" / "history.png"
    path = save_figure(plot_history(HISTORY), target, dpi=50)
    assert path == target
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as im:
        im.verify()
    assert [p.name for p in path.parent.iterdir()] == ["history.png"]
    plain = tmp_path / "plain.txt"
    plain.write_text("")  # the permissions any new file gets here (umask)
    assert path.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777


def test_save_figure_failure_leaves_nothing(tmp_path, monkeypatch):
    fig = plot_history(HISTORY)

    def broken_savefig(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(fig, "savefig", broken_savefig)
    with pytest.raises(RuntimeError, match="disk full"):
        save_figure(fig, tmp_path / "history.png")
    assert list(tmp_path.iterdir()) == []


def test_save_figure_suffix_and_format(tmp_path):
    fig = plot_iou_per_class([0.5], ["a"])
    assert save_figure(fig, tmp_path / "iou").name == "iou.png"
    assert save_figure(fig, tmp_path / "iou.pdf").read_bytes()[:4] == b"%PDF"
    with pytest.raises(ValueError, match="unknown format"):
        save_figure(fig, tmp_path / "iou.xyz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["iou.pdf", "iou.png"]
