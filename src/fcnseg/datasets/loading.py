"""Reading a dataset's files: images as RGB uint8, masks as class ids with void 255
(palette PNGs by their indices, SBD's ``.mat`` masks, raw values or colours decoded as
the `DatasetSpec` says), and a check of a whole split's files from their headers.

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
    """Read a label mask as (H, W) uint8 class indices, void = 255: the one place masks are
    decoded, for the tf.data pipeline, `evaluate` and `fcnseg.datasets.check_dataset` alike.

    The spec's ``mask_format`` says what the pixels hold (see `folder_dataset`):
    class ids (palette PNGs, VOC, by their indices; SBD's ``.mat`` masks through
    `fcnseg.datasets.voc.read_sbd_mask`), with the dataset's own void label
    becoming 255; raw values mapped by ``mask_values``; or the colormap's colours.
    A class id that is neither a class nor void raises `ValueError` naming the file.

    >>> mask = load_mask(SAMPLE_ROOT / "SegmentationClass/001763.png")  # doctest: +SKIP
    >>> sorted(set(mask.flat))                                                 # doctest: +SKIP
    [0, 8, 12, 18, 20, 255]
    """
    spec = get_spec(dataset)
    raw = read_raw_mask(path, spec.mask_format)
    values, _ = value_counts(raw)
    labels = label_values(values, spec)
    if (labels < 0).any():
        raise bad_values_error(path, values[labels < 0], values, spec)
    labels = labels.astype(np.uint8)
    if raw.dtype == np.uint8:  # a lookup table: five times faster than searching
        table = np.zeros(256, np.uint8)
        table[values] = labels
        return table[raw]
    return labels[np.searchsorted(values, raw)]


def read_raw_mask(path, mask_format: str = "index") -> np.ndarray:
    """A mask file's pixels as they are: (H, W) integers; colour masks (``mask_format="color"``)
    as ``R << 16 | G << 8 | B``. `label_values` says what they mean."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Mask file not found: {path}")
    if path.suffix.lower() == ".mat":
        return read_sbd_mask(path)
    try:
        with Image.open(path) as im:
            if mask_format == "color":
                rgb = np.array(im.convert("RGB"), np.int32)
                return rgb[..., 0] << 16 | rgb[..., 1] << 8 | rgb[..., 2]
            if im.mode not in ("P", "L", "1", "I;16", "I"):
                raise ValueError(
                    f"Mask {path} has mode {im.mode}: expected a single-channel PNG whose values are class ids "
                    "(or raw values, with mask_values=...); for colour masks pass mask_format='color' and the "
                    "colormap of your classes to folder_dataset."
                )
            mask = np.array(im)
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise ValueError(f"Cannot decode mask {path}: {e}") from None
    return mask.astype(np.uint8) if mask.dtype == np.bool_ else mask


def value_counts(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values of a raw mask, sorted, and how many pixels hold each.

    >>> value_counts(np.array([[0, 255, 255]], np.uint8))
    (array([  0, 255]), array([1, 2]))
    """
    if raw.dtype == np.uint8:  # bincount: several times faster than sorting
        counts = np.bincount(raw.ravel(), minlength=256)
        values = np.flatnonzero(counts)
        return values, counts[values]
    return np.unique(raw, return_counts=True)


def label_values(values: np.ndarray, spec: DatasetSpec) -> np.ndarray:
    """The class id (255: void) of each raw mask value, -1 for an index that is neither a
    class nor void; any value `mask_values` does not name, or colour not in the colormap, is void.

    >>> from fcnseg.datasets import folder_dataset
    >>> label_values(np.array([0, 128, 255]), folder_dataset(["bg", "fg"], mask_values={0: 0, 255: 1})).tolist()
    [0, 255, 1]
    """
    values = np.asarray(values, np.int64)
    if spec.mask_format == "index":
        labels = np.where(values == spec.void_label, VOID, values)
        return np.where((labels >= spec.num_classes) & (labels != VOID), -1, labels)
    if spec.mask_format == "values":
        meaning = dict(spec.mask_values)
    else:
        rgb = spec.colormap.astype(np.int64)
        meaning = {int(r << 16 | g << 8 | b): i for i, (r, g, b) in enumerate(rgb)}
    return np.array([meaning.get(int(v), VOID) for v in values], np.int64)


def bad_values_error(path, bad, found, spec: DatasetSpec) -> ValueError:
    """The error for a mask with class ids `bad` outside the classes and void, saying what
    to pass when the masks' raw values (`found`) stand for classes."""
    return ValueError(
        f"Mask {path} has values {[int(v) for v in bad[:10]]} outside the {spec.num_classes} classes of "
        f"{spec.name} (0..{spec.num_classes - 1}) and void ({spec.void_label}); if its values "
        f"{[int(v) for v in found[:10]]} stand for classes, pass {suggest_mask_values(found, spec)}."
    )


def suggest_mask_values(found, spec: DatasetSpec) -> str:
    """The ``mask_values`` argument that maps the raw values `found` to the classes in order
    (when there are as many), for messages.

    >>> from fcnseg.datasets import folder_dataset
    >>> suggest_mask_values([0, 255], folder_dataset(["background", "object"]))
    'mask_values={0: 0, 255: 1} (fcnseg-train: --mask-values 0:0 255:1)'
    """
    found = [int(v) for v in found]
    if len(found) != spec.num_classes:
        return "mask_values={raw value: class id, ...} (fcnseg-train: --mask-values RAW:ID ...)"
    pairs = {value: i for i, value in enumerate(found)}
    words = " ".join(f"{value}:{i}" for value, i in pairs.items())
    return f"mask_values={pairs} (fcnseg-train: --mask-values {words})"


def load_sample(sample: Sample, dataset: str | DatasetSpec = "voc2007"):
    """Load ``(image, mask)`` of a `Sample`, checking that their sizes agree."""
    image = load_image(sample.image_path)
    mask = load_mask(sample.mask_path, dataset)
    if image.shape[:2] != mask.shape:
        raise size_mismatch(sample, image.shape[1::-1], mask.shape[::-1])
    return image, mask


def size_mismatch(sample: Sample, image_size, mask_size) -> ValueError:
    """The error for a mask whose (width, height) is not its image's."""
    return ValueError(
        f"Mask {sample.mask_path} is {mask_size[0]}x{mask_size[1]} but its image "
        f"{sample.image_path} is {image_size[0]}x{image_size[1]} (width x height)."
    )


def image_size(path) -> tuple[int, int]:
    """(width, height) of an image or mask file from its header (SBD's ``.mat`` masks: read whole)."""
    path = Path(path)
    if path.suffix.lower() == ".mat":
        return sbd_mask_size(path)
    try:
        with Image.open(path) as im:
            return im.size
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"Cannot read {path}: the file is corrupt or not an image ({e}).") from None


def check_present(samples: Sequence[Sample]) -> None:
    """`FileNotFoundError` naming the first missing files of `samples`, if any."""
    missing = [str(p) for s in samples for p in (s.image_path, s.mask_path) if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} file(s) are missing, e.g. {missing[:5]}")


def check_samples(samples: Sequence[Sample], dataset: str | DatasetSpec = "voc2007") -> None:
    """Check that every file exists and image/mask sizes agree, from file headers only (quick
    even for thousands of files; SBD's ``.mat`` masks have none and are read whole). Raises
    `FileNotFoundError` or `ValueError` naming the first offending files.
    `fcnseg.datasets.check_dataset` also reads every mask's values.
    """
    check_present(samples)
    for s in samples:
        sizes = image_size(s.image_path), image_size(s.mask_path)
        if sizes[0] != sizes[1]:
            raise size_mismatch(s, *sizes)
