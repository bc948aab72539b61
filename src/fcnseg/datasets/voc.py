"""PASCAL VOC: 2007, 2012, and 2012 with SBD (Hariharan et al.'s Semantic Boundaries Dataset),
the FCN paper's training data.

Every VOC folder (``.../VOCdevkit/VOC2007``, ``VOC2012``) lists its official splits in
``ImageSets/Segmentation/<split>.txt`` (never a random split); images are
``JPEGImages/<id>.jpg`` and masks palette PNGs ``SegmentationClass/<id>.png``. VOC 2007:
train 209, val 213, trainval 422, test 210. The root may be the VOC folder or any folder
above it (``VOC_ROOT``, ``VOC2012_ROOT``).

VOC 2012 (``"voc2012"``) has ``train`` (1,464 images), ``val`` (1,449) and ``trainval``,
and, once SBD is there, ``train_aug``: the standard augmented training set of 10,582
images (as in DeepLab and mmsegmentation):

    train_aug = (VOC 2012 train  ∪  SBD train  ∪  SBD val)  −  VOC 2012 val

each id once. An id of VOC 2012 train keeps VOC's own PNG mask (with its void
border, 255); every other id takes SBD's mask (``cls/<id>.mat``, no void) and
SBD's image (``img/<id>.jpg``). Evaluate on VOC 2012 ``val``, which
``train_aug`` never touches.

Layout (what `fcnseg.download.download_voc2012` writes; ``root`` is what you pass as the dataset root)::

    root/VOCdevkit/VOC2012/{JPEGImages, SegmentationClass, ImageSets/Segmentation}
    root/benchmark_RELEASE/dataset/{img, cls, inst, train.txt, val.txt}

SBD is also found where ``SBD_ROOT`` points, or at mmsegmentation's
``VOCdevkit/VOCaug/dataset``.

>>> from fcnseg.pipeline import make_dataset
>>> train_ds = make_dataset("data", "train_aug", dataset="voc2012", augment=True)  # doctest: +SKIP

From a shell: ``fcnseg-download --dataset voc2012 --sbd``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import numpy as np

from fcnseg.datasets.spec import VOID, DatasetSpec, Layout, Sample, list_ids, unknown_split, voc_palette

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car",
    "cat", "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person",
    "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip
VOC_COLORMAP = voc_palette(len(VOC_CLASSES))
VOC2012_SPLITS = ("train", "val", "trainval")
TRAIN_AUG = "train_aug"
TRAIN_AUG_SIZE = 10582  # with the real VOC 2012 and SBD lists
SBD_ENV = "SBD_ROOT"
SBD_DIR = Path("benchmark_RELEASE") / "dataset"


# --------------------------------------------------------------------------- VOC folders


def voc_root(root: Path, spec: DatasetSpec) -> Path:
    """The VOC folder (holding ``ImageSets/Segmentation``) at `root` or below it."""
    year = Path(spec.layout.folder).name  # VOC2007, VOC2012
    for candidate in (root, root / year, root / "VOCdevkit" / year):
        if (candidate / "ImageSets" / "Segmentation").is_dir():
            return candidate
    raise FileNotFoundError(
        f"{root} is not a PASCAL VOC folder: no ImageSets/Segmentation in it, in "
        f"{root / year} or in {root / 'VOCdevkit' / year}. Download it with "
        f"fcnseg.download.download_{spec.name}(...) (fcnseg-download --dataset {spec.name}) or set {spec.root_env}."
    )


def voc_splits(voc: Path, spec: DatasetSpec) -> list[str]:
    """The split lists of a VOC folder."""
    return sorted(p.stem for p in (voc / "ImageSets" / "Segmentation").glob("*.txt"))


def voc_samples(voc: Path, split: str, spec: DatasetSpec) -> list[Sample]:
    """The samples a VOC split list names."""
    list_file = voc / "ImageSets" / "Segmentation" / f"{split}.txt"
    if not list_file.is_file():
        raise unknown_split(voc, split, spec)
    return [Sample(i, voc / spec.image_dir / f"{i}.jpg", voc / spec.mask_dir / f"{i}.png") for i in list_ids(list_file)]


# --------------------------------------------------------------------------- VOC 2012 with SBD


def train_aug_ids(voc_train: Iterable[str], voc_val: Iterable[str], sbd_ids: Iterable[str]):
    """The ``train_aug`` ids: ``(from_voc, from_sbd)``, sorted, disjoint, none of them in `voc_val`.

    `from_voc` are VOC 2012 train ids (VOC masks), `from_sbd` the SBD ids
    (train and val) that are neither VOC 2012 train nor val (SBD masks).

    >>> train_aug_ids(["a", "b"], ["c"], ["b", "c", "d", "d"])
    (['a', 'b'], ['d'])
    """
    voc_train, voc_val = set(voc_train), set(voc_val)
    from_voc = sorted(voc_train - voc_val)
    from_sbd = sorted(set(sbd_ids) - voc_train - voc_val)
    return from_voc, from_sbd


def find_sbd(voc: Path) -> Path | None:
    """SBD's ``dataset`` folder (holding ``cls/`` and ``train.txt``) for the VOC 2012 folder `voc`, or None.

    Looks at ``$SBD_ROOT`` (the ``dataset`` folder or a folder above it) when
    set, else beside ``VOCdevkit`` (``benchmark_RELEASE/dataset``, as
    `fcnseg.download.download_voc2012` unpacks it) and at ``VOCdevkit/VOCaug/dataset``.
    """
    env = os.environ.get(SBD_ENV)
    if env:
        base = Path(env).expanduser()
        candidates = (base, base / "dataset", base / SBD_DIR)
    else:
        candidates = (voc.parent.parent / SBD_DIR, voc.parent / "VOCaug" / "dataset")
    for candidate in candidates:
        if (candidate / "cls").is_dir() and (candidate / "train.txt").is_file():
            return candidate
    if env:
        raise FileNotFoundError(
            f"{SBD_ENV}={env} holds no SBD (a folder with cls/ and train.txt, such as "
            "benchmark_RELEASE/dataset): point it at one, or unset it."
        )
    return None


def voc2012_samples(voc: Path, split: str, spec: DatasetSpec) -> list[Sample]:
    """Samples of a VOC 2012 split (``train``, ``val``, ``trainval``) or of ``train_aug``
    (`fcnseg.datasets.read_split(root, "train_aug", "voc2012")`: 10,582 of them)."""
    if split != TRAIN_AUG:
        return voc_samples(voc, split, spec)
    sbd = find_sbd(voc)
    if sbd is None:
        raise FileNotFoundError(
            f"Split {TRAIN_AUG!r} needs SBD next to {voc}: none at {voc.parent.parent / SBD_DIR} or "
            f"{voc.parent / 'VOCaug' / 'dataset'}. Download it with `fcnseg-download --dataset voc2012 --sbd` "
            f"(or fcnseg.download.download_voc2012(..., sbd=True)), or set {SBD_ENV}."
        )
    lists = voc / "ImageSets" / "Segmentation"
    from_voc, from_sbd = train_aug_ids(
        list_ids(lists / "train.txt"), list_ids(lists / "val.txt"), list_ids(sbd / "train.txt") + list_ids(sbd / "val.txt")
    )
    keep = set(from_voc)
    samples = [s for s in voc_samples(voc, "train", spec) if s.id in keep]
    samples += [Sample(i, sbd / "img" / f"{i}.jpg", sbd / "cls" / f"{i}.mat") for i in from_sbd]
    return sorted(samples, key=lambda s: s.id)


def voc2012_splits(voc: Path, spec: DatasetSpec) -> list[str]:
    """VOC 2012's split lists, plus ``train_aug`` when SBD is found."""
    return sorted(set(voc_splits(voc, spec) + ([TRAIN_AUG] if find_sbd(voc) is not None else [])))


# --------------------------------------------------------------------------- SBD masks


def read_sbd_mask(path) -> np.ndarray:
    """SBD's class mask ``GTcls.Segmentation`` of a ``cls/<id>.mat`` file, as (H, W) uint8.

    Values are VOC's class ids 0..20; SBD marks no void. `fcnseg.datasets.load_mask`
    calls this for ``.mat`` files and checks the values.

    >>> read_sbd_mask("data/benchmark_RELEASE/dataset/cls/2008_000002.mat").shape   # doctest: +SKIP
    (375, 500)
    """
    from scipy.io import loadmat

    path = Path(path)
    try:
        mat = loadmat(path)
    except Exception as e:  # scipy raises several kinds for a file that is not MATLAB's
        raise ValueError(f"Cannot read SBD mask {path}: not a MATLAB .mat file ({e}).") from None
    gt = mat.get("GTcls")
    if gt is None or gt.dtype.names is None or "Segmentation" not in gt.dtype.names:
        raise ValueError(
            f"{path} is not an SBD class mask: it has no struct GTcls with a field Segmentation "
            f"(variables: {sorted(k for k in mat if not k.startswith('__'))}). Class masks are "
            "benchmark_RELEASE/dataset/cls/*.mat (inst/ holds instance masks)."
        )
    mask = np.asarray(gt["Segmentation"].flat[0])
    if mask.ndim != 2 or not (np.issubdtype(mask.dtype, np.integer) or mask.dtype == np.bool_):
        raise ValueError(
            f"SBD mask {path}: GTcls.Segmentation must be a 2-D integer array, "
            f"got shape {mask.shape} of {mask.dtype}."
        )
    if mask.size and (mask.min() < 0 or mask.max() > 255):
        raise ValueError(f"SBD mask {path} has values outside 0..255.")
    return mask.astype(np.uint8)


def sbd_mask_size(path) -> tuple[int, int]:
    """(width, height) of an SBD mask, in Pillow's order (the whole file is read: .mat has no cheap header)."""
    height, width = read_sbd_mask(path).shape
    return width, height


VOC2007 = DatasetSpec("voc2007", VOC_CLASSES, VOC_COLORMAP, Layout(voc_root, voc_splits, voc_samples, "VOCdevkit/VOC2007"),
                      VOID, "JPEGImages", "SegmentationClass", root_env="VOC_ROOT")  # fmt: skip
VOC2012 = DatasetSpec("voc2012", VOC_CLASSES, VOC_COLORMAP,
                      Layout(voc_root, voc2012_splits, voc2012_samples, "VOCdevkit/VOC2012"),
                      VOID, "JPEGImages", "SegmentationClass", root_env="VOC2012_ROOT")  # fmt: skip
