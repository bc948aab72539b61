"""The built-in datasets by name, and what works on any `DatasetSpec`: where its folder
is, which splits it has, what a split lists, and whether every file a split lists is there.

A dataset's facts live on its spec, in its own module; adding one is writing that module
and naming its spec in `DATASETS` (docs/data.md, "Adding a dataset").

>>> get_spec("camvid").classes[:3]
('Sky', 'Building', 'Pole')
>>> data_problem(get_spec("voc2007").sample_root, "voc2007", ["val"]) is None
True
"""

from __future__ import annotations

import os
from pathlib import Path

from fcnseg.datasets.camvid import CAMVID
from fcnseg.datasets.folders import folder_dataset
from fcnseg.datasets.spec import DatasetSpec, Sample
from fcnseg.datasets.voc import VOC2007, VOC2012

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


def dataset_env_vars() -> tuple[str, ...]:
    """The environment variables naming the built-in datasets' folders, each once.

    >>> "CAMVID_ROOT" in dataset_env_vars()
    True
    """
    names = (name for spec in DATASETS.values() for name in (spec.root_env, *spec.env_vars))
    return tuple(dict.fromkeys(name for name in names if name))


def default_root(dataset: str | DatasetSpec = "voc2007") -> Path:
    """Where a dataset lives: its environment variable (``root_env``), else its folder under ``data/``
    in the working folder.

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
    """The dataset's own folder in `root` (`DatasetSpec.root_in`: for VOC, `root` or a folder
    above ``VOCdevkit``); `FileNotFoundError` saying what to do when there is none."""
    return get_spec(dataset).root_in(root)


def available_splits(root, dataset: str | DatasetSpec = "voc2007") -> list[str]:
    """The split names present under `root`."""
    return get_spec(dataset).splits_in(root)


def read_split(root, split: str, dataset: str | DatasetSpec = "voc2007") -> list[Sample]:
    """List the samples of a split as ``Sample(id, image_path, mask_path)``.

    VOC uses the official ``ImageSets/Segmentation/<split>.txt`` lists (train 209,
    val 213, trainval 422, test 210), never a random split. Files are not opened
    here; `check_samples` does that.

    >>> samples = read_split(default_root("camvid"), "val", dataset="camvid")  # doctest: +SKIP
    >>> len(samples), samples[0].id                                           # doctest: +SKIP
    (101, '0016E5_07959')
    """
    return get_spec(dataset).samples_in(root, split)


def data_problem(root, spec: str | DatasetSpec, splits) -> str | None:
    """Why `root` cannot serve the given splits, or None when every file they list exists
    (`DatasetSpec.problem`)."""
    return get_spec(spec).problem(root, splits)
