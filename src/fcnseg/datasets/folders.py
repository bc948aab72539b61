"""Datasets kept as folders of images and masks with the same file stems, one pair
of folders per split (``image_dir`` and ``mask_dir`` templates with a ``{split}``
field): CamVid, and your own data through `folder_dataset` (masks of class ids,
of raw values such as 0 and 255, or of colours).
"""

from __future__ import annotations

import numbers
from pathlib import Path
from typing import Sequence

import numpy as np

from fcnseg.checks import one_of
from fcnseg.datasets.spec import (IMAGE_SUFFIXES, MASK_FORMATS, VOID, DatasetSpec, Layout, Sample, unknown_split,
                                  voc_palette)  # fmt: skip

CLASSES_FILE = "classes.txt"  # your own data's class names, one a line, in its root
FOLDER_DATASET = "folder"  # the dataset name of your own data in options and on command lines


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
    mask_values=None,
    mask_format: str | None = None,
) -> DatasetSpec:
    """Describe your own data: folders of images and masks with the same stems.

    What a mask's pixels hold (``mask_format``; default ``"values"`` when
    ``mask_values`` is given, else ``"index"``):

    - ``"index"``: class ids ``0..len(classes)-1``, ``void_label`` for pixels to
      ignore (single-channel PNGs);
    - ``"values"``: raw values that ``mask_values`` (``{raw: class id}``, a class
      id may be 255 for void) maps to class ids, every other value void, e.g.
      ``{0: 0, 255: 1}`` for binary masks of 0 and 255;
    - ``"color"``: the colours of ``colormap`` (one RGB row per class), every
      other colour void.

    Pass the returned spec as ``dataset=`` to any function of this package.

    >>> spec = folder_dataset(["bg", "cell"], name="cells", void_label=2)
    >>> spec.void_label, spec.colormap.shape
    (2, (2, 3))
    >>> folder_dataset(["background", "object"], mask_values={0: 0, 255: 1}).mask_values
    ((0, 0), (255, 1))
    """
    classes = class_names(classes)
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
    mask_format = one_of("mask_format", mask_format or ("values" if mask_values else "index"), MASK_FORMATS)
    if (mask_format == "values") != bool(mask_values):
        raise ValueError(f"mask_values go with mask_format='values' (the default when given), got mask_format="
                         f"{mask_format!r} and mask_values={mask_values!r}: e.g. mask_values={{0: 0, 255: 1}}.")
    pairs = mask_value_pairs(mask_values) if mask_values else ()
    wrong = [pair for pair in pairs if pair[1] >= len(classes) and pair[1] != VOID]
    if wrong:
        raise ValueError(f"mask_values maps {wrong[0][0]} to {wrong[0][1]}, which is neither a class id "
                         f"(0..{len(classes) - 1}) nor void ({VOID}).")  # fmt: skip
    return DatasetSpec(name, classes, colormap, FOLDERS, void_label, image_dir, mask_dir,
                       mask_format=mask_format, mask_values=pairs)  # fmt: skip


def class_names(classes) -> tuple[str, ...]:
    """`classes` as a tuple of 2 to 255 distinct, non-empty names (class id = position).

    >>> class_names(["background", "road"])
    ('background', 'road')
    """
    if isinstance(classes, str) or not all(isinstance(c, str) and c.strip() for c in classes):
        raise ValueError(f"classes must be a list of class names such as ['background', 'object'], got {classes!r}.")
    classes = tuple(c.strip() for c in classes)
    if len(classes) < 2:
        raise ValueError(f"A segmentation dataset needs at least 2 classes, got {classes!r}.")
    if len(classes) > VOID:
        raise ValueError(f"At most {VOID} classes are supported ({VOID} means void), got {len(classes)}.")
    twice = sorted({c for c in classes if classes.count(c) > 1})
    if twice:
        raise ValueError(f"Class names must differ: {twice} appear more than once.")
    return classes


def mask_value_pairs(value) -> tuple[tuple[int, int], ...]:
    """What raw mask values mean: ``{raw: class id}``, ``(raw, class id)`` pairs or
    ``"raw:class"`` words (the command line's ``--mask-values 0:0 255:1``), as sorted
    pairs of integers; a class id of 255 marks void. Their range is checked by `folder_dataset`.

    >>> mask_value_pairs({255: 1, 0: 0}), mask_value_pairs(["0:0", "128:255"])
    (((0, 0), (255, 1)), ((0, 0), (128, 255)))
    """
    items = value.items() if isinstance(value, dict) else value
    try:
        pairs = [tuple(item.split(":")) if isinstance(item, str) else tuple(item) for item in items]
        pairs = [(_integer(raw), _integer(label)) for raw, label in pairs]
    except (TypeError, ValueError):
        pairs = None
    if not pairs or any(raw < 0 or not 0 <= label <= VOID for raw, label in pairs):
        raise ValueError(f"mask_values must map raw mask values (integers >= 0) to class ids (or {VOID}, void), "
                         f"such as {{0: 0, 255: 1}} (command line: --mask-values 0:0 255:1), got {value!r}.")
    raws = [raw for raw, _ in pairs]
    if len(set(raws)) != len(raws):
        raise ValueError(f"mask_values gives a raw value twice: {value!r}.")
    return tuple(sorted(pairs))


def _integer(value) -> int:
    """An int from an int or a decimal string (JSON and papermill give dict keys as strings)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Integral, str)):
        raise ValueError(value)
    return int(value)


def own_dataset(root, classes=None, mask_values=None) -> DatasetSpec:
    """The spec of your own data at `root` (named after its folder) with `classes` (default:
    those in ``root/classes.txt``) and `mask_values`: what ``dataset="folder"`` means in
    `fcnseg.options.Options` and on the command lines.
    """
    if root is None:
        raise ValueError(f"dataset={FOLDER_DATASET!r} needs the folder of your data: data_root=... "
                         "(fcnseg-train and fcnseg-evaluate: --root DIR).")  # fmt: skip
    root = Path(root).expanduser()
    classes = read_classes(root) if classes is None else classes
    return folder_dataset(classes, name=root.resolve().name, mask_values=mask_values)


def read_classes(root) -> tuple[str, ...]:
    """The class names in ``root/classes.txt``, one a line (blank lines skipped)."""
    path = Path(root) / CLASSES_FILE
    if not path.is_file():
        raise FileNotFoundError(f"Your own data needs its class names: pass classes=[...] (fcnseg-train: --classes "
                                f"NAME NAME ...) or write them into {path}, one a line, class 0 first.")  # fmt: skip
    return class_names([line for line in path.read_text().splitlines() if line.strip()])
