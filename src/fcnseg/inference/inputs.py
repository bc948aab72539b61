"""What prediction takes in: images as files or arrays (`prepare_image`, the one conversion to
uint8 RGB or grayscale, a phone photo turned as its EXIF tag says) and the files that folders and
glob patterns name (`find_inputs`: images and videos).

>>> from fcnseg.datasets import SAMPLE_ROOT
>>> find_inputs([SAMPLE_ROOT / "JPEGImages"])[0].name
'001763.jpg'
>>> prepare_image(np.zeros((2, 3), np.uint8)).shape  # grayscale in, RGB out
(2, 3, 3)
"""

from __future__ import annotations

import glob
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageOps

from fcnseg.datasets import IMAGE_SUFFIXES, load_image, to_rgb_uint8

VIDEO_SUFFIXES = (".mp4", ".m4v", ".avi", ".mkv", ".mov", ".webm")
SUFFIXES = IMAGE_SUFFIXES + VIDEO_SUFFIXES  # what `find_inputs` picks from a folder


def prepare_image(image, channels: int = 3) -> np.ndarray:
    """An image path or array as uint8 (H, W, channels): the one conversion used everywhere.

    A file is read as a viewer shows it (`load_photo`). Grayscale, RGBA, 16-bit and
    float images (values in [0, 1] or 0..255) are converted; a float image in [0, 1]
    also gets a `UserWarning` (the model takes 0..255: see `warn_if_unit_range`);
    a wrong rank or dtype raises `ValueError`.
    """
    if isinstance(image, (str, os.PathLike)):
        rgb = load_photo(image)
    else:
        warn_if_unit_range(image)
        rgb = to_rgb_uint8(image)
    if channels == 1:
        return np.round(rgb @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)[..., None]
    return rgb


def load_photo(path) -> np.ndarray:
    """`load_image`, turned as the file's EXIF orientation says (Pillow's `ImageOps.exif_transpose`):
    a phone's photo tagged "rotate 90°" comes back as viewers show it.

    >>> load_photo(SAMPLE_ROOT / "JPEGImages/001763.jpg").shape  # no EXIF orientation  # doctest: +SKIP
    (375, 500, 3)
    """
    rgb = load_image(path)  # any format OpenCV reads; ValueError naming an unreadable file
    try:
        with Image.open(path) as picture:  # reads the header only, unless the photo is turned
            if picture.getexif().get(ExifTags.Base.Orientation, 1) == 1:
                return rgb
            return to_rgb_uint8(np.asarray(ImageOps.exif_transpose(picture).convert("RGB")))
    except OSError:  # a format Pillow does not read carries no EXIF orientation
        return rgb


def warn_if_unit_range(image) -> None:
    """Warn that a float image with values in [0, 1] is taken as 0..1 and scaled by 255: the
    model takes pixel values 0..255, and a 0..255 image that happens to be dark looks the
    same. uint8 pixels say which is meant (and give no warning)."""
    image = np.asarray(image)
    if np.issubdtype(image.dtype, np.floating) and image.size and 0 <= image.min() and image.max() <= 1:
        warnings.warn(
            "A float image with values in [0, 1] is taken as 0..1 and scaled by 255 (the model takes pixel "
            "values 0..255). Pass uint8 pixels, e.g. (image * 255).round().astype('uint8'), to say so.",
            UserWarning, stacklevel=4,  # the caller of predict_mask
        )  # fmt: skip


def find_inputs(inputs) -> list[Path]:
    """Files named by `inputs`: files as given, folders' images and videos (sorted,
    recursively), glob patterns.

    A name that is none of these is returned as it is, so that the caller
    reports it as missing along with the unreadable files.
    """
    found = []
    for item in [inputs] if isinstance(inputs, (str, Path)) else inputs:
        path = Path(item).expanduser()
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file())
        elif not path.exists() and glob.has_magic(str(item)):
            found += sorted(Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
        else:
            found.append(path)
    return list(dict.fromkeys(found))
