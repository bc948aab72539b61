"""PASCAL VOC 2012 and SBD (Hariharan et al.'s Semantic Boundaries Dataset): the FCN paper's training data.

The dataset ``"voc2012"`` (`fcnseg.datasets.VOC2012`) has VOC 2012's official
segmentation splits ``train`` (1,464 images), ``val`` (1,449) and
``trainval``, and, once SBD is there, ``train_aug``: the standard augmented
training set of 10,582 images (as in DeepLab and mmsegmentation):

    train_aug = (VOC 2012 train  ∪  SBD train  ∪  SBD val)  −  VOC 2012 val

each id once. An id of VOC 2012 train keeps VOC's own PNG mask (with its void
border, 255); every other id takes SBD's mask (``cls/<id>.mat``, no void) and
SBD's image (``img/<id>.jpg``). Evaluate on VOC 2012 ``val``, which
``train_aug`` never touches.

Layout (what `download_voc2012` writes; ``root`` is what you pass as the dataset root)::

    root/VOCdevkit/VOC2012/{JPEGImages, SegmentationClass, ImageSets/Segmentation}
    root/benchmark_RELEASE/dataset/{img, cls, inst, train.txt, val.txt}

SBD is also found where ``SBD_ROOT`` points, or at mmsegmentation's
``VOCdevkit/VOCaug/dataset``.

Example:

>>> from fcnseg.voc2012 import download_voc2012
>>> from fcnseg.pipeline import make_dataset
>>> voc = download_voc2012("data", sbd=True)                                   # doctest: +SKIP
>>> train_ds = make_dataset("data", "train_aug", dataset="voc2012", augment=True)  # doctest: +SKIP

From a shell: ``fcnseg-download --dataset voc2012 --sbd``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from fcnseg.datasets import VOC2012, Sample, _voc_split, resolve_root
from fcnseg.download import _say, download_file, safe_extract

# Official tarballs and their md5, as published in torchvision's VOCSegmentation(year="2012")
# (torchvision/datasets/voc.py) and SBDataset (torchvision/datasets/sbd.py).
VOC2012_URL = "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/"
VOC2012_TAR = "VOCtrainval_11-May-2012.tar"
SBD_URL = "https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/semantic_contours/"
SBD_TGZ = "benchmark.tgz"
VOC2012_FILES: dict[str, tuple[str, str]] = {
    VOC2012_TAR: (VOC2012_URL + VOC2012_TAR, "6cd6e144f989b92b3379bac3b3de84fd"),  # 2.0 GB
    SBD_TGZ: (SBD_URL + SBD_TGZ, "82b4d87ceb2ed10f6038a1cba92111cb"),  # 1.4 GB
}
VOC2012_SPLITS = ("train", "val", "trainval")
TRAIN_AUG = "train_aug"
TRAIN_AUG_SIZE = 10582  # with the real VOC 2012 and SBD lists
SBD_ENV = "SBD_ROOT"
SBD_DIR = Path("benchmark_RELEASE") / "dataset"

__all__ = [
    "VOC2012_FILES", "TRAIN_AUG", "train_aug_ids", "find_sbd", "read_split_voc2012",
    "read_sbd_mask", "download_voc2012",
]  # fmt: skip


# --------------------------------------------------------------------------- splits


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
    `download_voc2012` unpacks it) and at ``VOCdevkit/VOCaug/dataset``.
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


def read_split_voc2012(root, split: str) -> list[Sample]:
    """Samples of a VOC 2012 split (``train``, ``val``, ``trainval``) or of ``train_aug``.

    Prefer `fcnseg.datasets.read_split(root, split, "voc2012")`, which calls this.

    >>> len(read_split_voc2012("data", "train_aug"))   # doctest: +SKIP
    10582
    """
    voc = resolve_root(root, VOC2012)
    if split != TRAIN_AUG:
        return _voc_split(voc, split, VOC2012)
    sbd = find_sbd(voc)
    if sbd is None:
        raise FileNotFoundError(
            f"Split {TRAIN_AUG!r} needs SBD next to {voc}: none at {voc.parent.parent / SBD_DIR} or "
            f"{voc.parent / 'VOCaug' / 'dataset'}. Download it with `fcnseg-download --dataset voc2012 --sbd` "
            f"(or download_voc2012(..., sbd=True)), or set {SBD_ENV}."
        )
    lists = voc / "ImageSets" / "Segmentation"
    from_voc, from_sbd = train_aug_ids(
        _ids(lists / "train.txt"), _ids(lists / "val.txt"), _ids(sbd / "train.txt") + _ids(sbd / "val.txt")
    )
    keep = set(from_voc)
    samples = [s for s in _voc_split(voc, "train", VOC2012) if s.id in keep]
    samples += [Sample(i, sbd / "img" / f"{i}.jpg", sbd / "cls" / f"{i}.mat") for i in from_sbd]
    return sorted(samples, key=lambda s: s.id)


def available_splits_voc2012(voc: Path) -> list[str]:
    """VOC 2012's split lists, plus ``train_aug`` when SBD is found."""
    splits = [p.stem for p in (voc / "ImageSets" / "Segmentation").glob("*.txt")]
    return sorted(set(splits + ([TRAIN_AUG] if find_sbd(voc) is not None else [])))


def _ids(list_file: Path) -> list[str]:
    if not list_file.is_file():
        raise FileNotFoundError(f"Split list not found: {list_file}")
    return [line.strip() for line in list_file.read_text().splitlines() if line.strip()]


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


# --------------------------------------------------------------------------- download


def download_voc2012(
    root="data",
    *,
    sbd: bool = False,
    base_url: str | None = None,
    progress: bool = True,
    files: Mapping[str, tuple[str, str | None]] | None = None,
) -> Path:
    """Download and unpack VOC 2012 (and SBD with ``sbd=True``) into `root`; return ``root/VOCdevkit/VOC2012``.

    As `fcnseg.download.download_voc2007`: tarballs are kept in
    ``root/downloads/``, resumed after an interruption and md5-checked, then
    unpacked safely into `root`; a part already complete (every file its lists
    name is present) is not downloaded again.

    Args:
        root: folder for ``VOCdevkit/VOC2012``, ``benchmark_RELEASE`` and ``downloads/``.
        sbd: also SBD's ``benchmark.tgz`` (1.4 GB), for the ``train_aug`` split.
        base_url: a mirror folder (``http://``, ``file://``) holding both tarballs
            under their official names; replaces the official hosts.
        progress: print what happens and a progress bar to stderr.
        files: overrides of `VOC2012_FILES`, tarball name -> ``(url, md5)``;
            with `base_url` the url may be a bare file name.

    >>> voc = download_voc2012("data", sbd=True)    # doctest: +SKIP
    >>> voc                                          # doctest: +SKIP
    PosixPath('data/VOCdevkit/VOC2012')
    """
    root = Path(root).expanduser()
    voc = root / "VOCdevkit" / "VOC2012"
    table = {**VOC2012_FILES, **(files or {})}
    parts = {VOC2012_TAR: lambda: _voc_complete(voc)}
    if sbd:
        parts[SBD_TGZ] = lambda: _sbd_complete(root / SBD_DIR)
    for name, complete in parts.items():
        if complete():
            _say(progress, f"{name} already unpacked in {root}: nothing to download.")
            continue
        url, md5 = table[name]
        tar_path = download_file(_mirror(url, base_url), root / "downloads" / name, md5=md5, progress=progress)
        _say(progress, f"Extracting {tar_path} into {root}")
        safe_extract(tar_path, root)
        if not complete():
            raise FileNotFoundError(
                f"After extracting {tar_path}, files its lists name are still missing under {root}: "
                "the tarball is not the expected one. Delete it and run again."
            )
    return voc


def _mirror(url: str, base_url: str | None) -> str:
    """Where to fetch a tarball: an official URL or a bare name goes under `base_url` when given."""
    if "://" in url and (not base_url or url not in {u for u, _ in VOC2012_FILES.values()}):
        return url
    if not base_url:
        raise ValueError(f"{url!r} is a bare file name: give base_url, the folder that holds it.")
    return base_url.rstrip("/") + "/" + url.rsplit("/", 1)[-1]


def _voc_complete(voc: Path) -> bool:
    """Whether VOC 2012's train/val/trainval lists and every image and mask they name are present."""
    if not all((voc / "ImageSets" / "Segmentation" / f"{split}.txt").is_file() for split in VOC2012_SPLITS):
        return False
    samples = [s for split in VOC2012_SPLITS for s in _voc_split(voc, split, VOC2012)]
    return bool(samples) and all(s.image_path.is_file() and s.mask_path.is_file() for s in samples)


def _sbd_complete(sbd: Path) -> bool:
    """Whether SBD's train/val lists and every image and class mask they name are present."""
    try:
        ids = _ids(sbd / "train.txt") + _ids(sbd / "val.txt")
    except FileNotFoundError:
        return False
    return bool(ids) and all((sbd / "img" / f"{i}.jpg").is_file() and (sbd / "cls" / f"{i}.mat").is_file() for i in ids)
