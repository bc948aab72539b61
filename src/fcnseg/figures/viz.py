"""Pictures of segmentations: coloured masks, overlays, legends, prediction grids.
Training and evaluation plots are in `fcnseg.figures.plots`.

Plain NumPy and matplotlib, no TensorFlow. Every plotting function returns a
`matplotlib.figure.Figure` that is not registered with pyplot: it renders
headless (no display, no ``plt.show()``), is freed like any Python object, and
shows as a notebook cell's value. Write one to disk with `save_figure`.

Masks are (H, W) integer class ids with void = 255, as `fcnseg.datasets.load_mask`
returns them; images are RGB (H, W, 3), uint8 or float in [0, 1].

Example:

>>> from fcnseg.datasets import load_image, load_mask
>>> image = load_image(SAMPLE_ROOT / "JPEGImages/001763.jpg")       # doctest: +SKIP
>>> mask = load_mask(SAMPLE_ROOT / "SegmentationClass/001763.png")  # doctest: +SKIP
>>> fig = show_predictions([image], [mask], model.predict(image[None]))     # doctest: +SKIP
>>> save_figure(fig, "results/figures/example.png")                          # doctest: +SKIP
PosixPath('results/figures/example.png')
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.layout_engine import ConstrainedLayoutEngine
from matplotlib.patches import Patch

from fcnseg.checks import unit_interval
from fcnseg.datasets import VOC_CLASSES, VOC_COLORMAP, VOID, to_rgb_uint8
from fcnseg.files import atomic_path
from fcnseg.options import PredictOptions

VOID_COLOR = (224, 224, 192)  # PASCAL VOC's own colour for void (object boundaries)


# ---------------------------------------------------------------------------
# Arrays: colour masks and overlays
# ---------------------------------------------------------------------------


def colorize(mask, colormap=VOC_COLORMAP, *, void_color=VOID_COLOR) -> np.ndarray:
    """Turn (H, W) class ids into an (H, W, 3) uint8 RGB picture.

    Class ``i`` gets ``colormap[i]``, void (255) gets `void_color`. Any other id
    without a colour raises `ValueError` (a CamVid mask drawn with the VOC
    palette, say).

    >>> colorize(np.array([[0, 1, 255]]))[0].tolist()
    [[0, 0, 0], [128, 0, 0], [224, 224, 192]]
    """
    mask = _as_mask(mask)
    colormap = _as_colormap(colormap)
    _check_ids(mask, len(colormap), what="colours in the colormap")
    table = np.zeros((VOID + 1, 3), np.uint8)
    table[: len(colormap)] = colormap
    table[VOID] = void_color
    return table[mask]


def overlay(
    image, mask, *, alpha=PredictOptions.alpha, colormap=VOC_COLORMAP, void_color=VOID_COLOR, ignore=()
) -> np.ndarray:
    """Blend the colour mask onto the image: ``(1 - alpha) * image + alpha * colours``.

    Pixels whose class is in `ignore` keep the plain image, e.g. ``ignore=(0,)``
    leaves VOC background untouched and ``ignore=(255,)`` leaves void alone.

    >>> image = np.full((2, 2, 3), 200, np.uint8)
    >>> overlay(image, np.array([[0, 1], [1, 0]]), alpha=0.5, ignore=(0,))[0].tolist()
    [[200, 200, 200], [164, 100, 100]]
    """
    image = to_rgb_uint8(image)
    unit_interval("alpha", alpha)
    colours = colorize(mask, colormap, void_color=void_color)
    _check_same_size(image, colours, "mask")
    painted = ~np.isin(_as_mask(mask), list(ignore))
    return _blend(image, colours, alpha * painted)


def class_mask_overlay(
    image, mask, class_id, *, color=(255, 0, 0), alpha=0.6, dim=0.35
) -> np.ndarray:
    """Spotlight one class: its pixels tinted with `color`, the rest of the image dimmed.

    `mask` is either (H, W) class ids, or an (H, W, C) array of per-class scores
    (softmax probabilities, one-hot) whose channel `class_id`, in [0, 1], is used
    as a soft mask. Class pixels become ``(1 - alpha) * image + alpha * color``;
    the other pixels ``dim * image`` (0 is black, 1 leaves them as they are).

    >>> image = np.full((1, 2, 3), 100, np.uint8)
    >>> class_mask_overlay(image, np.array([[15, 0]]), 15, alpha=0.5, dim=0.5)[0].tolist()
    [[178, 50, 50], [50, 50, 50]]
    """
    image = to_rgb_uint8(image)
    unit_interval("alpha", alpha)
    unit_interval("dim", dim)
    weight = _class_weight(mask, class_id)
    _check_same_size(image, weight, "mask")
    lit = _blend(image, np.asarray(color, np.float32), alpha)
    dark = np.rint(image * np.float32(dim)).astype(np.uint8)
    return _blend(dark, lit, weight)


# ---------------------------------------------------------------------------
# Legends and prediction grids
# ---------------------------------------------------------------------------


def legend_handles(
    class_ids, *, classes=VOC_CLASSES, colormap=VOC_COLORMAP, void_color=VOID_COLOR
) -> list[Patch]:
    """Legend entries (coloured patches) for the given class ids; 255 is labelled "void".

    >>> [h.get_label() for h in legend_handles([0, 15, 255])]
    ['background', 'person', 'void']
    """
    ids = sorted({int(i) for i in class_ids})
    _check_ids(np.array(ids, np.int64), min(len(classes), len(colormap)), what="classes")
    colours = {i: (void_color if i == VOID else colormap[i]) for i in ids}
    return [
        Patch(
            facecolor=np.asarray(colours[i]) / 255.0,
            edgecolor="0.5",
            label="void" if i == VOID else classes[i],
        )
        for i in ids
    ]


def add_legend(
    target, masks, *, classes=VOC_CLASSES, colormap=VOC_COLORMAP, void_color=VOID_COLOR, **kwargs
):
    """Add a legend of the classes present in `masks` (one (H, W) mask or a list of them).

    `target` is an Axes (legend outside on its right) or a Figure (legend below
    the panels). Extra keyword arguments go to matplotlib's ``legend``.

    >>> fig = Figure()
    >>> legend = add_legend(fig.subplots(), np.array([[0, 8], [8, 255]]))
    >>> [t.get_text() for t in legend.get_texts()]
    ['background', 'cat', 'void']
    """
    masks = [masks] if isinstance(masks, np.ndarray) and masks.ndim == 2 else masks
    present = set().union(*(np.unique(_as_mask(m)).tolist() for m in masks))
    handles = legend_handles(present, classes=classes, colormap=colormap, void_color=void_color)
    if isinstance(target, Figure):
        outside = isinstance(target.get_layout_engine(), ConstrainedLayoutEngine)
        options = {"loc": "outside lower center" if outside else "lower center"}
        options["ncols"] = min(len(handles), 8)
    else:
        options = {"loc": "upper left", "bbox_to_anchor": (1.02, 1.0), "borderaxespad": 0.0}
    return target.legend(handles=handles, **{**options, **kwargs})


def show_predictions(
    images,
    masks,
    predictions,
    *,
    classes=VOC_CLASSES,
    colormap=VOC_COLORMAP,
    titles=None,
    alpha=PredictOptions.alpha,
    ignore=(),
) -> Figure:
    """Grid with one row per example: image | ground truth | prediction | overlay.

    `images` is a batch or list of N RGB images, `masks` N ground-truth masks or
    None (inference only: image | prediction | overlay), `predictions` N class-id
    maps or the model's raw (N, H, W, C) scores (arg-maxed here). `titles`
    (N strings, e.g. image ids) replace the "image" column title; `alpha` and
    `ignore` go to `overlay`. A legend lists the classes present.

    >>> image = np.zeros((8, 8, 3), np.uint8)
    >>> fig = show_predictions([image], None, [np.eye(8, dtype=np.uint8)])
    >>> len(fig.axes)
    3
    """
    columns = {} if masks is None else {"ground truth": [_as_mask(m) for m in masks]}
    columns["prediction"] = [_as_class_map(p) for p in predictions]
    return _mask_grid(images, columns, titles=titles, classes=classes, colormap=colormap, alpha=alpha, ignore=ignore)


def show_masks(
    images,
    masks,
    *,
    classes=VOC_CLASSES,
    colormap=VOC_COLORMAP,
    titles=None,
    alpha=PredictOptions.alpha,
    ignore=(),
) -> Figure:
    """Grid with one row per example: image | mask | overlay (the data, no model).

    `masks` are (H, W) class ids (void 255); images may be uint8 or float
    0..255 (a pipeline batch).

    >>> fig = show_masks([np.zeros((4, 4, 3), np.uint8)], [np.eye(4, dtype=np.uint8)])
    >>> [ax.get_title() for ax in fig.axes]
    ['image', 'mask', 'overlay']
    """
    columns = {"mask": [_as_mask(m) for m in masks]}
    return _mask_grid(images, columns, titles=titles, classes=classes, colormap=colormap, alpha=alpha, ignore=ignore)


def _mask_grid(images, maps: dict, *, titles, classes, colormap, alpha, ignore) -> Figure:
    """One row per image: image | its class map of each column of `maps` in colour | overlay of the last; a legend."""
    images = [to_rgb_uint8(np.asarray(image)) for image in images]
    _check_lengths(images, titles=titles, **{name.split()[-1] + "s": column for name, column in maps.items()})
    rows = list(zip(*maps.values()))
    columns = ["image", *maps, "overlay"]
    height, width = images[0].shape[:2]
    fig = Figure(figsize=(2.8 * len(columns), 2.8 * height / width * len(images) + 0.8), layout="constrained")
    axes = fig.subplots(len(images), len(columns), squeeze=False)
    for row, (image, maps) in enumerate(zip(images, rows)):
        panels = [image, *(colorize(m, colormap) for m in maps)]
        panels.append(overlay(image, maps[-1], alpha=alpha, colormap=colormap, ignore=ignore))
        _draw_panels(axes[row], panels, [titles[row] if titles is not None else "image", *columns[1:]])
    add_legend(fig, [m for maps in rows for m in maps], classes=classes, colormap=colormap)
    return fig


def show_class_mask(image, mask, class_id, *, classes=VOC_CLASSES, color=(255, 0, 0), title=None,
                    prediction=None) -> Figure:
    """One class of a mask, as the reference notebook's ``horse.png``: image | class mask | spotlight
    (| the model's mask of that class, with `prediction`).

    The second panel is the binary mask of `class_id` (white where the class is,
    black elsewhere; void is black too: channel `class_id` of a one-hot target),
    the third `class_mask_overlay`. `mask` and `prediction` are (H, W) class ids.

    >>> fig = show_class_mask(np.zeros((4, 4, 3), np.uint8), np.eye(4, dtype=np.uint8), 1)
    >>> [ax.get_title() for ax in fig.axes]
    ['image', "channel 1 ('aeroplane')", 'aeroplane highlighted']
    >>> fig = show_class_mask(np.zeros((4, 4, 3), np.uint8), np.eye(4, dtype=np.uint8), 1, prediction=np.eye(4, dtype=int))
    >>> fig.axes[-1].get_title()
    "predicted 'aeroplane'"
    """
    image = to_rgb_uint8(np.asarray(image))
    mask = _as_mask(mask)
    _check_same_size(image, mask, "mask")
    if not 0 <= class_id < len(classes):
        raise ValueError(f"class_id {class_id} is not one of the {len(classes)} classes.")
    name = classes[class_id]
    masks = [mask] if prediction is None else [mask, _as_mask(prediction)]
    if prediction is not None:
        _check_same_size(image, masks[1], "prediction")
    channels = [np.repeat(((m == class_id).astype(np.uint8) * 255)[..., None], 3, axis=-1) for m in masks]
    panels = [image, channels[0], class_mask_overlay(image, mask, class_id, color=color), *channels[1:]]
    titles = ["image", f"channel {class_id} ({name!r})", f"{name} highlighted", f"predicted {name!r}"][: len(panels)]
    height, width = image.shape[:2]
    fig = Figure(figsize=(2.8 * len(panels), 2.8 * height / width + 0.6), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    _draw_panels(axes, panels, titles)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_class_legend(classes=VOC_CLASSES, colormap=VOC_COLORMAP, *, void_color=VOID_COLOR, ncols=4) -> Figure:
    """Every class's colour (and void's) in one small figure.

    >>> len(plot_class_legend().legends[0].get_texts())
    22
    """
    handles = legend_handles([*range(len(classes)), VOID], classes=classes, colormap=colormap, void_color=void_color)
    rows = math.ceil(len(handles) / ncols)
    fig = Figure(figsize=(2.2 * ncols, 0.3 * rows + 0.3))
    fig.legend(handles=handles, loc="center", ncols=ncols, frameon=False)
    return fig


def save_figure(fig, path, *, dpi=120) -> Path:
    """Write `fig` to `path` atomically and return the path.

    Parent folders are created; the format comes from the suffix (``.png`` is
    added when there is none). The figure is written to a temporary file in the
    same folder and renamed, so a crash never leaves a half-written image.

    >>> save_figure(plot_history({"loss": [1.0, 0.5]}), "results/figures/loss")  # doctest: +SKIP
    PosixPath('results/figures/loss.png')
    """
    path = Path(path)
    if not path.suffix:
        path = path.with_suffix(".png")
    fmt = path.suffix[1:].lower()
    supported = fig.canvas.get_supported_filetypes()
    if fmt not in supported:
        raise ValueError(
            f"Cannot save {path}: unknown format {fmt!r}; use one of {sorted(supported)}."
        )
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight")
    return path


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def _draw_panels(axes, panels: list[np.ndarray], names: list[str]) -> None:
    """One row of the prediction grid: pictures of the image's size, titled, no axes."""
    for ax, panel, name in zip(axes, panels, names):
        _check_same_size(panels[0], panel, name)
        ax.imshow(panel, interpolation="nearest")
        ax.set_title(name, fontsize=10)
        ax.set_axis_off()


def _as_mask(mask) -> np.ndarray:
    """(H, W) integer class ids as an int64 array, or a clear error."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"A mask must be (H, W) class ids, got shape {mask.shape}.")
    if not (mask.dtype == np.bool_ or np.issubdtype(mask.dtype, np.integer)):
        raise ValueError(
            f"A mask must hold integer class ids, got dtype {mask.dtype}; "
            "arg-max scores first (or pass (N, H, W, C) scores to show_predictions)."
        )
    return mask.astype(np.int64)


def _as_class_map(prediction) -> np.ndarray:
    """A prediction as class ids: (H, W) ids pass through, (H, W, C) scores are arg-maxed."""
    prediction = np.asarray(prediction)
    if prediction.ndim == 3:
        return prediction.argmax(axis=-1)
    return _as_mask(prediction)


def _as_colormap(colormap) -> np.ndarray:
    colormap = np.asarray(colormap)
    if colormap.ndim != 2 or colormap.shape[1] != 3 or not 0 < len(colormap) <= VOID:
        raise ValueError(f"colormap must be (num_classes, 3) RGB rows, got shape {colormap.shape}.")
    return colormap.astype(np.uint8)


def _check_ids(ids: np.ndarray, count: int, *, what: str) -> None:
    """Raise if an id other than void is outside 0..count-1."""
    bad = ((ids < 0) | (ids >= count)) & (ids != VOID)
    if bad.any():
        values = np.unique(ids[bad])[:10].tolist()
        raise ValueError(
            f"Class ids {values} have no entry: there are only {count} {what} "
            f"(ids 0..{count - 1}, void {VOID}). Pass the dataset's own classes/colormap, "
            "e.g. colormap=get_spec('camvid').colormap."
        )


def _check_same_size(image: np.ndarray, other: np.ndarray, name: str) -> None:
    if image.shape[:2] != other.shape[:2]:
        (h, w), (oh, ow) = image.shape[:2], other.shape[:2]
        raise ValueError(
            f"The {name} is {ow}x{oh} but the image is {w}x{h} (width x height); "
            "resize one to the other first (nearest-neighbour for masks)."
        )


def _check_lengths(images, **others) -> None:
    for name, values in others.items():
        if values is not None and len(values) != len(images):
            raise ValueError(f"Got {len(images)} images but {len(values)} {name}.")
    if not images:
        raise ValueError("Nothing to show: no images.")


def _blend(base: np.ndarray, top, weight) -> np.ndarray:
    """``(1 - weight) * base + weight * top`` per pixel, rounded to uint8."""
    weight = np.asarray(weight, np.float32)[..., None]
    out = base.astype(np.float32) * (1.0 - weight) + np.asarray(top, np.float32) * weight
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _class_weight(mask, class_id: int) -> np.ndarray:
    """(H, W) float weight in [0, 1] of `class_id`: hard from ids, soft from scores."""
    mask = np.asarray(mask)
    if mask.ndim != 3:
        return (_as_mask(mask) == class_id).astype(np.float32)
    if not 0 <= class_id < mask.shape[-1]:
        raise ValueError(f"class_id {class_id} is not a channel of scores shaped {mask.shape}.")
    weight = mask[..., class_id].astype(np.float32)
    if not np.isfinite(weight).all() or weight.min() < 0.0 or weight.max() > 1.0:
        raise ValueError(
            "Scores must be probabilities in [0, 1]; apply a softmax to logits first "
            f"(channel {class_id} spans {weight.min():.3g}..{weight.max():.3g})."
        )
    return weight


