"""What describes a dataset: its classes and colours, its folder and download (`DatasetSpec`),
and how its family keeps its files (`Layout`: where the root is, which splits there are,
what a split lists).

After loading, void is always **255** (`VOID`), whatever label the raw files use.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np

VOID = 255
MASK_FORMATS = ("index", "values", "color")  # what a mask's pixels hold: class ids, raw values, colours
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")


class Sample(NamedTuple):
    """One labelled image of a split."""

    id: str
    image_path: Path
    mask_path: Path


@dataclasses.dataclass(frozen=True)
class Layout:
    """How a family of datasets keeps its files; each `DatasetSpec` carries its own.

    `find_root` turns the folder a user gives into the dataset's own folder (or raises
    `FileNotFoundError` saying what to do), `splits` lists the split names under it,
    `samples` the `Sample` of one split (files are not opened). `folder` is where the
    dataset lives under ``data/`` when no variable names it (None: the dataset's name).
    """

    find_root: Callable[[Path, DatasetSpec], Path]
    splits: Callable[[Path, DatasetSpec], list[str]]
    samples: Callable[[Path, str, DatasetSpec], list[Sample]]
    folder: str | None = None


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """A segmentation dataset: class names, colormap, which raw label is void, its `Layout`
    and where its images and masks live within it (``image_dir``, ``mask_dir``: folder
    names, or templates with a ``{split}`` field for the folders layout), and what its
    masks hold (``mask_format``, one of `MASK_FORMATS`): class ids (``"index"``), raw
    values that ``mask_values`` maps to class ids (``"values"``: ``((raw, class id), ...)``),
    or the colours of ``colormap`` (``"color"``); `fcnseg.datasets.load_mask` decodes them.

    Where it is and how to get it: ``root_env`` names its folder (``env_vars`` other folders
    it reads), ``download(root, *, splits, base_url=None, progress=True)`` fetches `splits`
    into `root` (at ``root/<Layout.folder>`` when the layout names one) and returns the
    dataset's folder (None: the user brings the data), and
    ``sample_root`` is a bundled copy of a few of its images for smoke tests. What the
    notebook shows: the class of ``example_class`` as a mask (None: the largest class of an
    image), and ``inference_images`` (paths under its folder) for inference.

    Example (your own data, `fcnseg.datasets.folder_dataset`: ``root/train/images/*.jpg``
    with ``root/train/masks/*.png``):

    >>> from fcnseg.datasets import folder_dataset
    >>> folder_dataset(["background", "road"], name="roads").num_classes
    2
    """

    name: str
    classes: tuple[str, ...]
    colormap: np.ndarray
    layout: Layout
    void_label: int = VOID
    image_dir: str = "{split}/images"
    mask_dir: str = "{split}/masks"
    root_env: str | None = None  # the variable naming the dataset's folder
    eval_split: str = "val"  # the split scores are reported on (CamVid: test)
    mask_format: str = "index"
    mask_values: tuple[tuple[int, int], ...] = ()  # with mask_format "values": (raw value, class id) pairs
    env_vars: tuple[str, ...] = ()  # other variables naming folders it reads (VOC 2012: SBD_ROOT)
    download: Callable[..., Path] | None = None
    sample_root: Path | None = None
    example_class: str | None = None
    inference_images: tuple[str, ...] = ()

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def root_in(self, root) -> Path:
        """The dataset's own folder in `root` (for VOC: `root` or a folder above ``VOCdevkit``);
        `FileNotFoundError` saying what to do when there is none."""
        root = Path(root).expanduser()
        if not root.is_dir():
            raise FileNotFoundError(f"Dataset root {root} does not exist (dataset {self.name!r}).")
        return self.layout.find_root(root, self)

    def splits_in(self, root) -> list[str]:
        """The split names present under `root`."""
        return self.layout.splits(self.root_in(root), self)

    def samples_in(self, root, split: str) -> list[Sample]:
        """The samples of `split` under `root` (files are not opened); `ValueError` when it lists none."""
        root = self.root_in(root)
        samples = self.layout.samples(root, split, self)
        if not samples:
            raise ValueError(f"Split {split!r} of {self.name} under {root} is empty.")
        return samples

    def problem(self, root, splits) -> str | None:
        """Why `root` cannot serve `splits`, or None when every file they list exists
        (the one completeness check: of a dataset folder, and of what a download unpacked)."""
        try:
            root = self.root_in(root)
            for split in dict.fromkeys(splits):
                if split not in self.splits_in(root):
                    return f"{root} has no split {split!r}"
                samples = self.samples_in(root, split)
                missing = [p for s in samples for p in (s.image_path, s.mask_path) if not p.is_file()]
                if missing:
                    return (
                        f"{len(missing)} file(s) listed in split {split!r} are missing under {root}, "
                        f"e.g. {missing[0].relative_to(root)}"
                    )
        except (FileNotFoundError, ValueError) as e:
            return str(e)
        return None


def voc_palette(n: int = 21) -> np.ndarray:
    """The PASCAL VOC palette (the devkit's labelcolormap): bit-interleaved RGB for label `i`;
    also the colours of your own datasets unless you give some.

    >>> voc_palette(3).tolist()
    [[0, 0, 0], [128, 0, 0], [0, 128, 0]]
    """
    cmap = np.zeros((n, 3), np.uint8)
    for i in range(n):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        cmap[i] = (r, g, b)
    return cmap


def list_ids(list_file: Path) -> list[str]:
    """The ids a split list names, one a line."""
    if not list_file.is_file():
        raise FileNotFoundError(f"Split list not found: {list_file}")
    return [line.strip() for line in list_file.read_text().splitlines() if line.strip()]


def unknown_split(root: Path, split: str, spec: DatasetSpec) -> ValueError:
    """The error for a split that `root` does not have, listing those it has."""
    return ValueError(f"Unknown split {split!r} for {spec.name} under {root}; "
                      f"available: {spec.layout.splits(root, spec)}.")  # fmt: skip
