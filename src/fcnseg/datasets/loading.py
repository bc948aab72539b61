"""Reading a dataset's files: images as RGB uint8, masks as class ids with void 255
(palette PNGs by their indices, SBD's ``.mat`` masks), and a check of a whole split's
files before any training.

>>> from fcnseg.datasets import SAMPLE_ROOT, read_split
>>> image, mask = load_sample(read_split(SAMPLE_ROOT, "val")[0])
>>> image.shape, mask.shape
((375, 500, 3), (375, 500))
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from fcnseg.datasets.catalog import get_spec
from fcnseg.datasets.spec import VOID, DatasetSpec, Sample
from fcnseg.datasets.voc import read_sbd_mask, sbd_mask_size


def load_image(path) -> np.ndarray:
    """Read an image file as RGB uint8 of shape (H, W, 3).

    Grayscale is repeated to three channels, RGBA loses its alpha, 16-bit
    images are scaled to 8 bits. Anything unreadable raises `ValueError`
    naming the file.

    >>> load_image(SAMPLE_ROOT / "JPEGImages/001763.jpg").shape  # doctest: +SKIP
    (375, 500, 3)
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Image file not found: {path}")
    data = np.fromfile(path, np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise ValueError(f"Cannot decode image {path}: the file is corrupt or not an image.")
    try:
        return to_rgb_uint8(image, bgr=True)
    except ValueError as e:
        raise ValueError(f"Unsupported image {path}: {e}") from None


def to_rgb_uint8(image: np.ndarray, *, bgr: bool = False) -> np.ndarray:
    """Convert an image array to RGB uint8 (H, W, 3).

    Accepts (H, W), (H, W, 1), (H, W, 3) and (H, W, 4); uint8, uint16 (scaled
    by 1/257) and float (values in [0, 1] are scaled by 255, larger values are
    taken as 0..255). ``bgr=True`` says the channels are OpenCV's BGR(A) order.
    """
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] not in (3, 4)):
        raise ValueError(
            f"expected an image of shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {image.shape}"
        )
    if min(image.shape[:2]) < 1:
        raise ValueError(f"image has an empty side: shape {image.shape}")
    if image.dtype == np.uint16:
        image = (image.astype(np.float32) / 257.0).round().astype(np.uint8)
    elif np.issubdtype(image.dtype, np.floating):
        if not np.isfinite(image).all():
            raise ValueError("image holds NaN or infinite values")
        scale = 255.0 if image.max(initial=0.0) <= 1.0 else 1.0
        image = np.clip(image * scale, 0, 255).round().astype(np.uint8)
    elif image.dtype == np.bool_ or np.issubdtype(image.dtype, np.integer):
        if image.dtype != np.uint8 and (image.min(initial=0) < 0 or image.max(initial=0) > 255):
            raise ValueError(f"integer image of dtype {image.dtype} has values outside 0..255")
        image = image.astype(np.uint8)
    else:
        raise ValueError(f"unsupported image dtype {image.dtype}")
    if image.ndim == 2:
        return np.repeat(image[..., None], 3, axis=-1)
    if image.shape[-1] == 4:
        image = image[..., :3]
    return np.ascontiguousarray(image[..., ::-1] if bgr else image)


def load_mask(path, dataset: str | DatasetSpec = "voc2007") -> np.ndarray:
    """Read a label mask as (H, W) uint8 class indices, void = 255.

    Palette PNGs (VOC) are read as their palette indices, never by matching
    RGB colours. SBD's ``.mat`` masks (``GTcls.Segmentation``) are read with
    `fcnseg.datasets.voc.read_sbd_mask`. The dataset's own void label becomes 255, and any value that
    is neither a class nor void raises `ValueError` naming the file.

    >>> mask = load_mask(SAMPLE_ROOT / "SegmentationClass/001763.png")  # doctest: +SKIP
    >>> sorted(set(mask.flat))                                                 # doctest: +SKIP
    [0, 8, 12, 18, 20, 255]
    """
    spec = get_spec(dataset)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Mask file not found: {path}")
    if path.suffix.lower() == ".mat":
        return _to_labels(read_sbd_mask(path), spec, path)
    try:
        with Image.open(path) as im:
            if im.mode not in ("P", "L", "1", "I;16", "I"):
                raise ValueError(
                    f"Mask {path} has mode {im.mode}: expected a single-channel index PNG "
                    "(palette or grayscale) whose values are class ids."
                )
            mask = np.array(im)
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise ValueError(f"Cannot decode mask {path}: {e}") from None
    return _to_labels(mask, spec, path)


def _to_labels(mask: np.ndarray, spec: DatasetSpec, path) -> np.ndarray:
    mask = mask.astype(np.int64)
    labels = np.where(mask == spec.void_label, VOID, mask)
    bad = (labels >= spec.num_classes) & (labels != VOID)
    if bad.any():
        values = sorted(set(np.unique(labels[bad]).tolist()))[:10]
        raise ValueError(
            f"Mask {path} has values {values} outside the {spec.num_classes} classes of "
            f"{spec.name} (0..{spec.num_classes - 1}) and void ({spec.void_label})."
        )
    return labels.astype(np.uint8)


def load_sample(sample: Sample, dataset: str | DatasetSpec = "voc2007"):
    """Load ``(image, mask)`` of a `Sample`, checking that their sizes agree."""
    image = load_image(sample.image_path)
    mask = load_mask(sample.mask_path, dataset)
    if image.shape[:2] != mask.shape:
        raise ValueError(
            f"Mask {sample.mask_path} is {mask.shape[1]}x{mask.shape[0]} but its image "
            f"{sample.image_path} is {image.shape[1]}x{image.shape[0]} (width x height)."
        )
    return image, mask


def check_samples(samples: Sequence[Sample], dataset: str | DatasetSpec = "voc2007") -> None:
    """Check, before any training, that every file exists and image/mask sizes agree.

    Reads only file headers, so it is quick even for thousands of files (SBD's
    ``.mat`` masks have none and are read whole). Raises `FileNotFoundError`
    or `ValueError` naming the first offending files.
    """
    missing = [str(p) for s in samples for p in (s.image_path, s.mask_path) if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} file(s) are missing, e.g. {missing[:5]}")
    for s in samples:
        sizes = []
        for p in (s.image_path, s.mask_path):
            if p.suffix.lower() == ".mat":
                sizes.append(sbd_mask_size(p))
                continue
            try:
                with Image.open(p) as im:
                    sizes.append(im.size)
            except (UnidentifiedImageError, OSError) as e:
                raise ValueError(f"Cannot read {p}: the file is corrupt or not an image ({e}).")
        if sizes[0] != sizes[1]:
            raise ValueError(
                f"Mask {s.mask_path} is {sizes[1][0]}x{sizes[1][1]} but its image "
                f"{s.image_path} is {sizes[0][0]}x{sizes[0][1]} (width x height)."
            )
