"""Prediction at the input's own resolution.

The model sees the image at its own size (or at ``input_size``, with the
logits resized back bilinearly; an image over ``max_pixels`` scaled down to it, or
in tiles: `fit_input`), and the argmax gives an (H, W) uint8 map of
class ids for an (H, W) image, whatever its size or channels.

>>> from fcnseg.inference.predict import predict_mask
>>> mask = predict_mask(model, SAMPLE_ROOT / "JPEGImages/001763.jpg")  # doctest: +SKIP
>>> mask.shape, mask.dtype                                                    # doctest: +SKIP
((375, 500), dtype('uint8'))
"""

from __future__ import annotations

import math

import numpy as np
from keras import ops

from fcnseg.inference.inputs import prepare_image
from fcnseg.inference.int8 import inference_model
from fcnseg.options import PredictOptions

DEFAULTS = PredictOptions()


def predict_logits(
    model, images: np.ndarray, *, input_size=DEFAULTS.input_size, scales=DEFAULTS.scales, flip: bool = DEFAULTS.flip,
    max_pixels: int = DEFAULTS.max_pixels, oversize: str = DEFAULTS.oversize, precision=None, calibration=None,
):
    """Logits (N, H, W, C) float32 for a batch of equal-size uint8 images (N, H, W, channels).

    With ``input_size=(h, w)`` the batch is resized to that size for the
    model and the logits are resized back bilinearly to (H, W). Test-time
    augmentation: ``scales=(1.0, 1.25)`` runs the model at each factor times
    that size and averages the logits (resized back); ``flip=True`` also
    averages in the mirrored batch's logits, mirrored back. The compute is
    roughly ``sum(s * s for s in scales)`` passes, doubled by ``flip``.

    `max_pixels` is the budget of one model input (memory grows with it: a 12-megapixel
    photo at the default 4.2 peaks at 4.5 GB resident in float32 on CPU, 1.3 GB of it the
    shipped model); an input over it is run as `oversize` says (`fit_input`):
    ``"downscale"`` or ``"tiles"``.

    ``precision="int8"`` runs the model as a calibrated int8 LiteRT program, one per input size
    (built on first use, then cached on disk), calibrated on `calibration` (default for
    camvid-fcn8s: the bundled street photos): see `fcnseg.inference.int8`. ``None`` runs it as loaded.

    >>> predict_logits(model, batch, scales=(1.0, 1.25), flip=True).shape  # doctest: +SKIP
    (4, 360, 480, 11)
    """
    model = inference_model(model, precision, calibration)
    settings = PredictOptions(input_size=input_size, scales=scales, flip=flip, max_pixels=max_pixels, oversize=oversize)
    images = np.asarray(images)
    height, width = images.shape[1:3]
    base = settings.input_size or (height, width)
    x = ops.convert_to_tensor(images, "float32")
    total = 0.0
    for scale in settings.scales:
        size = (max(1, round(base[0] * scale)), max(1, round(base[1] * scale)))
        total = total + fit_input(lambda batch: _model_logits(model, batch, settings.flip), x, size, (height, width),
                                  settings.max_pixels, settings.oversize)  # fmt: skip
    return ops.convert_to_numpy(total / len(settings.scales))


def fit_input(logits_of, x, size, out_size, max_pixels: int, oversize: str):
    """`logits_of` (a batch's logits, e.g. the model's) for batch `x` resized to `size`, resized to `out_size`,
    with an input over `max_pixels` pixels either scaled down to fit (``oversize="downscale"``,
    `fit_pixels`) or cut into overlapping tiles that fit, their logits blended (``"tiles"``, `tiled_logits`).

    ``"downscale"`` is the default (`PredictOptions.oversize`): on CamVid val frames upscaled 4x (1440x1920,
    budget 1 megapixel, ``camvid-fcn8s``) it scores mean IoU 0.497 against 0.289 for tiles, with a sixth of
    their model pixels (docs/your_own_data.md, ``bench/oversize_bench.py``): the model sees a large photo's
    objects nearer the size it was trained on, with the whole scene as context. Tiles score as a whole-image
    pass at full resolution does (0.289): they are for models trained on such resolutions.

    >>> fit_input(lambda batch: batch, np.ones((1, 300, 400, 3), "float32"), (300, 400), (300, 400),
    ...           100 * 100, "tiles").shape
    (1, 300, 400, 3)
    """
    over = size[0] * size[1] > max_pixels
    if over and oversize == "downscale":
        size = fit_pixels(size, max_pixels)
    if size != out_size:
        x = ops.image.resize(x, size, interpolation="bilinear", antialias=True)
    logits = tiled_logits(logits_of, x, max_pixels) if over and oversize == "tiles" else logits_of(x)
    if size != out_size:
        logits = ops.image.resize(logits, out_size, interpolation="bilinear")
    return logits


def fit_pixels(size, max_pixels: int) -> tuple[int, int]:
    """`size` (height, width) scaled down, its aspect ratio kept, to at most `max_pixels` pixels.

    >>> fit_pixels((3000, 4000), 2048 * 2048)
    (1773, 2364)
    """
    factor = math.sqrt(max_pixels / (size[0] * size[1]))
    return max(1, math.floor(size[0] * factor)), max(1, math.floor(size[1] * factor))


def tiled_logits(logits_of, x, max_pixels: int) -> np.ndarray:
    """`logits_of` a batch `x` (N, H, W, 3) run on tiles of at most `max_pixels` pixels (`tile_grid`),
    blended where they overlap with weights falling linearly to each tile's edges.

    >>> tiled_logits(lambda b: np.asarray(b), np.ones((1, 300, 400, 3)), 100 * 100).shape
    (1, 300, 400, 3)
    """
    height, width = x.shape[1:3]
    total, weights = None, np.zeros((height, width, 1), np.float32)
    for (top, tile_h), (left, tile_w) in tile_grid((height, width), max_pixels):
        logits = ops.convert_to_numpy(logits_of(x[:, top : top + tile_h, left : left + tile_w]))
        if total is None:  # the number of classes is known from the first tile
            total = np.zeros((*x.shape[:3], logits.shape[-1]), np.float32)
        weight = np.outer(_ramp(tile_h), _ramp(tile_w))[..., None]
        total[:, top : top + tile_h, left : left + tile_w] += logits * weight
        weights[top : top + tile_h, left : left + tile_w] += weight
    return total / weights


def tile_grid(size, max_pixels: int) -> list:
    """``((top, height), (left, width))`` of tiles of at most `max_pixels` pixels (sides multiples of 32, at
    least 32) that cover an image of `size`, neighbours overlapping by a quarter of a tile or more.

    >>> tile_grid((100, 120), 64 * 96)
    [((0, 64), (0, 96)), ((0, 64), (24, 96)), ((36, 64), (0, 96)), ((36, 64), (24, 96))]
    """
    tile_h = min(size[0], max(32, math.isqrt(max_pixels) // 32 * 32))
    tile_w = min(size[1], max(32, max_pixels // tile_h // 32 * 32))
    rows, columns = _starts(size[0], tile_h), _starts(size[1], tile_w)
    return [((top, tile_h), (left, tile_w)) for top in rows for left in columns]


def _starts(length: int, tile: int) -> list[int]:
    """Where tiles of `tile` pixels start to cover `length`, evenly spread, overlapping by ``tile // 4`` or more."""
    if length <= tile:
        return [0]
    overlap = tile // 4
    count = math.ceil((length - overlap) / (tile - overlap))
    return np.linspace(0, length - tile, count).round().astype(int).tolist()


def _ramp(length: int) -> np.ndarray:
    """Blending weights along a tile's side: 1 in the middle, falling linearly over its outer quarters."""
    edge = np.minimum(np.arange(length), np.arange(length)[::-1]) + 1
    return np.minimum(1.0, edge / max(1, length // 4)).astype(np.float32)


def _model_logits(model, x, flip):
    """The model's logits for batch `x`, averaged with those of the mirrored batch (mirrored back) with `flip`."""
    logits = model.predict_on_batch(x)
    if flip:
        logits = (logits + ops.flip(model.predict_on_batch(ops.flip(x, axis=2)), axis=2)) / 2
    return logits


def predict_mask(
    model, image, *, input_size=DEFAULTS.input_size, scales=DEFAULTS.scales, flip: bool = DEFAULTS.flip,
    max_pixels: int = DEFAULTS.max_pixels, oversize: str = DEFAULTS.oversize, precision=None, calibration=None,
) -> np.ndarray:
    """Class ids (H, W) uint8 for one image (path or array) of any size, at its own resolution
    (`precision` and `calibration` as in `predict_logits`).

    >>> predict_mask(model, np.zeros((333, 500), np.uint8)).shape  # grayscale  # doctest: +SKIP
    (333, 500)
    >>> predict_mask(model, "street.jpg", precision="int8").shape     # doctest: +SKIP
    (540, 960)
    """
    model = inference_model(model, precision, calibration)
    image = prepare_image(image, model.input_shape[-1])
    logits = predict_logits(model, image[None], input_size=input_size, scales=scales, flip=flip, max_pixels=max_pixels,
                            oversize=oversize)  # fmt: skip
    return logits[0].argmax(-1).astype(np.uint8)


def predict_masks(
    model,
    images,
    *,
    input_size=DEFAULTS.input_size,
    scales=DEFAULTS.scales,
    flip: bool = DEFAULTS.flip,
    batch_size: int = DEFAULTS.batch_size,
    max_pixels: int = DEFAULTS.max_pixels,
    oversize: str = DEFAULTS.oversize,
    precision=None,
    calibration=None,
):
    """Masks for a batch array (N, H, W[, C]) or a list of arrays or paths.

    Images of equal size are run together in batches of `batch_size`. Returns
    a list of (H, W) uint8 arrays in the order given. `precision` and
    `calibration` as in `predict_logits`.
    """
    model = inference_model(model, precision, calibration)
    batch_size = PredictOptions(batch_size=batch_size).batch_size
    channels = model.input_shape[-1]
    prepared = [prepare_image(image, channels) for image in images]
    masks = [None] * len(prepared)
    by_size: dict[tuple, list[int]] = {}
    for i, image in enumerate(prepared):
        by_size.setdefault(image.shape, []).append(i)
    for indices in by_size.values():
        for start in range(0, len(indices), batch_size):
            chunk = indices[start : start + batch_size]
            batch = np.stack([prepared[i] for i in chunk])
            logits = predict_logits(
                model, batch, input_size=input_size, scales=scales, flip=flip, max_pixels=max_pixels,
                oversize=oversize,
            )
            for i, l in zip(chunk, logits):
                masks[i] = l.argmax(-1).astype(np.uint8)
    return masks
