"""Datasets kept as folders of images and index masks with the same file stems, one pair
of folders per split (``image_dir`` and ``mask_dir`` templates with a ``{split}``
field): CamVid, and your own data through `folder_dataset`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from fcnseg.datasets.spec import IMAGE_SUFFIXES, VOID, DatasetSpec, Layout, Sample, unknown_split, voc_palette


def _root(root: Path, spec: DatasetSpec) -> Path:
    return root


def _splits(root: Path, spec: DatasetSpec) -> list[str]:
    """Every name for which both folder templates name a folder under `root`."""
    return sorted(
        p.name
        for p in root.iterdir()
        if (root / spec.image_dir.format(split=p.name)).is_dir()
        and (root / spec.mask_dir.format(split=p.name)).is_dir()
    )


def _samples(root: Path, split: str, spec: DatasetSpec) -> list[Sample]:
    """Whatever the split's two folders hold, paired by file stem."""
    image_dir = root / spec.image_dir.format(split=split)
    mask_dir = root / spec.mask_dir.format(split=split)
    if not image_dir.is_dir() or not mask_dir.is_dir():
        raise unknown_split(root, split, spec)
    images = {p.stem: p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
    masks = {p.stem: p for p in mask_dir.iterdir() if p.suffix.lower() == ".png"}
    unmatched = sorted(set(images) ^ set(masks))
    if unmatched:
        raise FileNotFoundError(
            f"{len(unmatched)} file(s) of split {split!r} have an image but no mask or a mask "
            f"but no image (in {image_dir} / {mask_dir}), e.g. {unmatched[:5]}."
        )
    return [Sample(stem, images[stem], masks[stem]) for stem in sorted(images)]


FOLDERS = Layout(_root, _splits, _samples)


def folder_dataset(
    classes: Sequence[str],
    *,
    name: str = "custom",
    image_dir: str = "{split}/images",
    mask_dir: str = "{split}/masks",
    void_label: int = VOID,
    colormap: np.ndarray | None = None,
) -> DatasetSpec:
    """Describe your own data: folders of images and index masks with the same stems.

    Masks are single-channel PNGs whose pixel values are class ids
    ``0..len(classes)-1``, with ``void_label`` for pixels to ignore.
    Pass the returned spec as ``dataset=`` to any function of this package.

    >>> spec = folder_dataset(["bg", "cell"], name="cells", void_label=2)
    >>> spec.void_label, spec.colormap.shape
    (2, (2, 3))
    """
    classes = tuple(classes)
    if len(classes) < 2:
        raise ValueError(f"A segmentation dataset needs at least 2 classes, got {classes!r}.")
    if len(classes) > VOID:
        raise ValueError(f"At most {VOID} classes are supported ({VOID} means void), got {len(classes)}.")
    if int(void_label) < len(classes):
        raise ValueError(
            f"void_label={void_label} is a class id (classes are 0..{len(classes) - 1}): "
            f"use a value of at least {len(classes)}, e.g. {VOID}."
        )
    if colormap is None:
        colormap = voc_palette(len(classes))
    colormap = np.asarray(colormap, np.uint8)
    if colormap.shape != (len(classes), 3):
        raise ValueError(f"colormap must have shape ({len(classes)}, 3), got {colormap.shape}.")
    return DatasetSpec(name, classes, colormap, FOLDERS, void_label, image_dir, mask_dir)

