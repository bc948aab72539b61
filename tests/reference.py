"""Reference computations for the tests, written apart from fcnseg's own code paths.

Images are resized with Pillow (antialiased bilinear, the filter fcnseg asks
TensorFlow for), logits with OpenCV (bilinear, half-pixel centres, no
antialiasing), and the model runs through `model.predict` on plain NumPy
arrays. Test-time augmentation is computed from its definition: every pass
(each scale, and its mirror with ``flip``) is brought back to the image's size
and all passes are averaged with equal weights.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

VOID = 255


def resize_images(images: np.ndarray, size) -> np.ndarray:
    """(N, H, W, C) float images to (N, h, w, C): Pillow's bilinear filter, antialiased when shrinking."""
    height, width = size
    out = np.empty((images.shape[0], height, width, images.shape[-1]), np.float32)
    for n, image in enumerate(np.asarray(images, np.float32)):
        for c in range(image.shape[-1]):
            plane = Image.fromarray(np.ascontiguousarray(image[..., c]), mode="F")
            out[n, ..., c] = np.asarray(plane.resize((width, height), Image.BILINEAR))
    return out


def resize_logits(logits: np.ndarray, size) -> np.ndarray:
    """(N, h, w, C) logits to (N, H, W, C) with OpenCV's plain bilinear interpolation."""
    height, width = size
    return np.stack([cv2.resize(np.ascontiguousarray(l), (width, height), interpolation=cv2.INTER_LINEAR)
                     .reshape(height, width, -1) for l in np.asarray(logits, np.float32)])  # fmt: skip


def passes(model, images, *, input_size=None, scales=(1.0,), flip=False) -> list[np.ndarray]:
    """Every pass's logits at the images' own size: one per scale, two with `flip`."""
    images = np.asarray(images, np.float32)
    height, width = images.shape[1:3]
    base = input_size or (height, width)
    out = []
    for scale in scales:
        size = (max(1, round(base[0] * scale)), max(1, round(base[1] * scale)))
        x = images if size == (height, width) else resize_images(images, size)
        views = [(x, lambda l: l)]
        if flip:
            views.append((x[:, :, ::-1], lambda l: l[:, :, ::-1]))
        for view, back in views:
            logits = back(model.predict(np.ascontiguousarray(view), verbose=0))
            out.append(logits if size == (height, width) else resize_logits(logits, (height, width)))
    return out


def tta_logits(model, images, **options) -> np.ndarray:
    """The mean of all `passes`."""
    return np.mean(passes(model, images, **options), axis=0)


def confusion(true_masks, predicted_masks, num_classes: int) -> np.ndarray:
    """Rows: true class, columns: predicted class; void pixels left out."""
    cm = np.zeros((num_classes, num_classes), np.int64)
    for truth, prediction in zip(true_masks, predicted_masks):
        keep = truth != VOID
        cm += np.bincount(truth[keep].astype(np.int64) * num_classes + prediction[keep],
                          minlength=num_classes * num_classes).reshape(num_classes, num_classes)  # fmt: skip
    return cm


def pixels_apart(cm_a, cm_b) -> int:
    """How many pixels two confusion matrices of the same masks classify differently (at least)."""
    return int(np.abs(np.asarray(cm_a) - np.asarray(cm_b)).sum()) // 2


def spread_classes(model, seed: int = 0):
    """Give `model`'s ``score_fr`` a seeded random kernel with zero mean over its inputs, so that
    its maps hold several classes whatever the rest of the model learned, on any CPU and at any
    precision (random or briefly trained ReLU features share one direction that a plain kernel
    turns into one class everywhere, where no test-time augmentation could change a pixel)."""
    layer = model.get_layer("score_fr")
    kernel = np.random.default_rng(seed).normal(size=layer.kernel.shape)
    layer.kernel.assign(kernel - kernel.mean(axis=2, keepdims=True))
    return model
