"""Datasets: PASCAL VOC 2007, VOC 2012 with SBD (`fcnseg.datasets.voc`), CamVid
(`~fcnseg.datasets.camvid`) and your own folders (`~fcnseg.datasets.folders`), each
described once by a `DatasetSpec` that carries its `Layout` (its root, splits and split
lists); `~fcnseg.datasets.catalog` finds them by name, `~fcnseg.datasets.loading`
reads their files, `~fcnseg.datasets.survey` checks and describes a split's masks
(`check_dataset`, `describe_dataset`). Void is always **255** after loading.

>>> from fcnseg.datasets import read_split, load_image, load_mask, get_spec
>>> samples = read_split("data/VOCdevkit/VOC2007", "val")           # doctest: +SKIP
>>> image = load_image(samples[0].image_path)                        # doctest: +SKIP
>>> mask = load_mask(samples[0].mask_path, dataset="voc2007")        # doctest: +SKIP
>>> get_spec("camvid").classes[:3]
('Sky', 'Building', 'Pole')
"""

from fcnseg.datasets.camvid import CAMVID, CAMVID_CLASSES, CAMVID_COLORMAP
from fcnseg.datasets.catalog import (DATASETS, available_splits, data_problem, dataset_env_vars, default_root, get_spec,
                                     read_split, resolve_root, spec_for_classes)  # fmt: skip
from fcnseg.datasets.folders import FOLDER_DATASET, folder_dataset, own_dataset
from fcnseg.datasets.loading import check_samples, load_image, load_mask, load_sample, to_rgb_uint8
from fcnseg.datasets.spec import IMAGE_SUFFIXES, MASK_FORMATS, VOID, DatasetSpec, Layout, Sample
from fcnseg.datasets.survey import DatasetSummary, check_dataset, describe_dataset
from fcnseg.datasets.voc import SAMPLE_ROOT, VOC2007, VOC2012, VOC_CLASSES, VOC_COLORMAP

__all__ = [
    "CAMVID", "CAMVID_CLASSES", "CAMVID_COLORMAP", "DATASETS", "available_splits", "data_problem", "dataset_env_vars",
    "default_root", "get_spec", "read_split", "resolve_root", "spec_for_classes", "FOLDER_DATASET", "folder_dataset",
    "own_dataset", "check_samples", "load_image",
    "load_mask", "load_sample", "to_rgb_uint8", "IMAGE_SUFFIXES", "MASK_FORMATS", "VOID", "DatasetSpec", "Layout",
    "Sample", "DatasetSummary", "check_dataset", "describe_dataset",
    "SAMPLE_ROOT", "VOC2007", "VOC2012", "VOC_CLASSES", "VOC_COLORMAP",
]  # fmt: skip
