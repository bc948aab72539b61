"""The built-in datasets by name, and what works on any `DatasetSpec`: where its folder
is, which splits it has, what a split lists, and whether every file a split lists is there.

>>> get_spec("camvid").classes[:3]
('Sky', 'Building', 'Pole')
>>> data_problem(SAMPLE_ROOT, get_spec("voc2007"), ["val"]) is None
True
"""

from __future__ import annotations

import os
from pathlib import Path

from fcnseg.datasets.camvid import CAMVID
from fcnseg.datasets.folders import folder_dataset
from fcnseg.datasets.spec import DatasetSpec, Sample
from fcnseg.datasets.voc import VOC2007, VOC2012

# One real VOC 2007 test image and its mask, shipped with the package for smoke tests.
SAMPLE_ROOT = Path(__file__).resolve().parent.parent / "sample" / "voc2007"
DATASETS = {spec.name: spec for spec in (VOC2007, CAMVID, VOC2012)}


def get_spec(dataset: str | DatasetSpec) -> DatasetSpec:
    """Return the `DatasetSpec` for a built-in name (``"voc2007"``, ``"voc2012"``, ``"camvid"``) or a spec."""
    if isinstance(dataset, DatasetSpec):
        return dataset
    try:
        return DATASETS[dataset]
    except KeyError:
        raise ValueError(
            f"Unknown dataset {dataset!r}: use one of {sorted(DATASETS)} "
            "or a DatasetSpec from folder_dataset(...)."
        ) from None


def spec_for_classes(num_classes: int, dataset: str | DatasetSpec | None = None) -> DatasetSpec:
    """The spec whose colours draw a model's `num_classes` classes: `dataset` (checked to have
    that many), else the built-in dataset with that many, else a VOC-style palette.

    >>> spec_for_classes(11).name
    'camvid'
    """
    if dataset is not None:
        spec = get_spec(dataset)
        if spec.num_classes != num_classes:
            raise ValueError(f"The model predicts {num_classes} classes but dataset {spec.name!r} has "
                             f"{spec.num_classes}: pass the dataset it was trained on.")  # fmt: skip
        return spec
    for spec in DATASETS.values():
        if spec.num_classes == num_classes:
            return spec
    return folder_dataset([f"class {i}" for i in range(num_classes)])


def default_root(dataset: str | DatasetSpec = "voc2007") -> Path:
    """Where a built-in dataset lives: its environment variable, else ``data/`` in the working folder.

    ``VOC_ROOT`` may point at ``.../VOCdevkit/VOC2007`` or at any folder that
    contains ``VOCdevkit/VOC2007``; ``VOC2012_ROOT`` likewise for VOC 2012;
    ``CAMVID_ROOT`` at the folder holding ``train/``, ``trainannot/``, ... .
    """
    spec = get_spec(dataset)
    env = os.environ.get(spec.root_env or "")
    if env:
        return Path(env).expanduser()
    return Path("data") / (spec.layout.folder or spec.name)


def resolve_root(root: str | os.PathLike, dataset: str | DatasetSpec = "voc2007") -> Path:
    """The dataset's own folder in `root` (for VOC: `root` or a folder above ``VOCdevkit``);
    `FileNotFoundError` saying what to do when there is none."""
    spec = get_spec(dataset)
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"Dataset root {root} does not exist (dataset {spec.name!r}).")
    return spec.layout.find_root(root, spec)


def available_splits(root, dataset: str | DatasetSpec = "voc2007") -> list[str]:
    """The split names present under `root`."""
    spec = get_spec(dataset)
    return spec.layout.splits(resolve_root(root, spec), spec)


def read_split(root, split: str, dataset: str | DatasetSpec = "voc2007") -> list[Sample]:
    """List the samples of a split as ``Sample(id, image_path, mask_path)``.

    VOC uses the official ``ImageSets/Segmentation/<split>.txt`` lists (train 209,
    val 213, trainval 422, test 210), never a random split. Files are not opened
    here; `check_samples` does that.

    >>> samples = read_split(default_root("camvid"), "val", dataset="camvid")  # doctest: +SKIP
    >>> len(samples), samples[0].id                                           # doctest: +SKIP
    (101, '0016E5_07959')
    """
    spec = get_spec(dataset)
    root = resolve_root(root, spec)
    samples = spec.layout.samples(root, split, spec)
    if not samples:
        raise ValueError(f"Split {split!r} of {spec.name} under {root} is empty.")
    return samples


def data_problem(root, spec: DatasetSpec, splits) -> str | None:
    """Why `root` cannot serve the given splits, or None when every file they list exists
    (the one completeness check: of a dataset folder, and of what a download unpacked)."""
    try:
        root = resolve_root(root, spec)
        for split in dict.fromkeys(splits):
            if split not in available_splits(root, spec):
                return f"{root} has no split {split!r}"
            samples = read_split(root, split, spec)
            missing = [p for s in samples for p in (s.image_path, s.mask_path) if not p.is_file()]
            if missing:
                return (
                    f"{len(missing)} file(s) listed in split {split!r} are missing under {root}, "
                    f"e.g. {missing[0].relative_to(root)}"
                )
    except (FileNotFoundError, ValueError) as e:
        return str(e)
    return None
