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

Layout (what `download_voc2012` writes; ``root`` is what you pass as the dataset root)::

    root/VOCdevkit/VOC2012/{JPEGImages, SegmentationClass, ImageSets/Segmentation}
    root/benchmark_RELEASE/dataset/{img, cls, inst, train.txt, val.txt}

SBD is also found where ``SBD_ROOT`` points, or at mmsegmentation's
``VOCdevkit/VOCaug/dataset``.

>>> from fcnseg.datasets.pipeline import make_dataset
>>> train_ds = make_dataset("data", "train_aug", dataset="voc2012", augment=True)  # doctest: +SKIP

Downloads (`download_voc2007`, `download_voc2012`: the official tarballs, md5-checked and
resumed by `fcnseg.datasets.download`) are skipped when the data is there: every file its splits list
(`DatasetSpec.problem`, the check a run makes too).

>>> voc = download_voc2007("data")                     # doctest: +SKIP
>>> voc                                                # doctest: +SKIP
PosixPath('data/VOCdevkit/VOC2007')

From a shell: ``fcnseg-download --root data``, ``fcnseg-download --dataset voc2012 --sbd``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from fcnseg.datasets.spec import VOID, DatasetSpec, Layout, Sample, list_ids, unknown_split, voc_palette
from fcnseg.datasets.download import fetch_and_unpack

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
# One real VOC 2007 test image and its mask, shipped with the package for smoke tests.
SAMPLE_ROOT = Path(__file__).resolve().parent.parent / "sample" / "voc2007"

VOC2007_URL = "http://host.robots.ox.ac.uk/pascal/VOC/voc2007/"
TRAINVAL_TAR = "VOCtrainval_06-Nov-2007.tar"
TEST_TAR = "VOCtest_06-Nov-2007.tar"
# Tarball name -> (url, md5). The test tarball holds the 210 test images and masks.
VOC2007_FILES: dict[str, tuple[str, str]] = {
    TRAINVAL_TAR: (VOC2007_URL + TRAINVAL_TAR, "c52e279531787c972589f7e41ab4ae64"),
    TEST_TAR: (VOC2007_URL + TEST_TAR, "b6e924de25625d8de591ea690078ad9f"),
}
# Which tarball holds each official segmentation split.
VOC2007_SPLITS = {"train": TRAINVAL_TAR, "val": TRAINVAL_TAR, "trainval": TRAINVAL_TAR, "test": TEST_TAR}
# VOC 2012 and SBD, as published in torchvision's VOCSegmentation(year="2012")
# (torchvision/datasets/voc.py) and SBDataset (torchvision/datasets/sbd.py).
VOC2012_URL = "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/"
VOC2012_TAR = "VOCtrainval_11-May-2012.tar"
SBD_URL = "https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/semantic_contours/"
SBD_TGZ = "benchmark.tgz"
VOC2012_FILES: dict[str, tuple[str, str]] = {
    VOC2012_TAR: (VOC2012_URL + VOC2012_TAR, "6cd6e144f989b92b3379bac3b3de84fd"),  # 2.0 GB
    SBD_TGZ: (SBD_URL + SBD_TGZ, "82b4d87ceb2ed10f6038a1cba92111cb"),  # 1.4 GB
}


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
        f"fcnseg.datasets.voc.download_{spec.name}(...) (fcnseg-download --dataset {spec.name}) or set {spec.root_env}."
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
            f"(or fcnseg.datasets.voc.download_voc2012(..., sbd=True)), or set {SBD_ENV}."
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


# --------------------------------------------------------------------------- downloads


def download_voc2007(root="data", *, splits: Iterable[str] | str = ("trainval", "test"), base_url: str | None = None,
                     progress: bool = True, files: Mapping[str, tuple[str, str | None]] | None = None) -> Path:
    """Download and unpack PASCAL VOC 2007 into `root` (about 900 MB); return ``root/VOCdevkit/VOC2007``.

    Tarballs are kept in ``root/downloads/`` (a rerun resumes or skips them).
    Nothing happens when every requested split is complete (its list file and
    every image and mask it names exist). Nothing is written outside `root`.

    Args:
        splits: ``"train"``, ``"val"``, ``"trainval"`` (the 450 MB trainval
            tarball) and/or ``"test"`` (430 MB, with the 210 test masks).
        base_url: a mirror (or ``file://`` folder) replacing the official URL.
        progress: print what happens and a progress bar.
        files: overrides of `VOC2007_FILES`, tarball name -> ``(url or file
            name, md5)``; a bare file name is looked up under `base_url`.
    """
    root = Path(root).expanduser()
    voc = root / "VOCdevkit" / "VOC2007"
    splits = _split_names(splits, VOC2007_SPLITS, "VOC 2007")
    tarballs = dict.fromkeys(VOC2007_SPLITS[s] for s in splits)  # ordered, no repeats
    parts = {name: _missing(voc, VOC2007, [s for s in splits if VOC2007_SPLITS[s] == name]) for name in tarballs}
    fetch_and_unpack(parts, root, VOC2007_FILES, files=files, base_url=base_url, progress=progress)
    return voc


def download_voc2012(root="data", *, splits: Iterable[str] | str = VOC2012_SPLITS, sbd: bool = False,
                     base_url: str | None = None, progress: bool = True,
                     files: Mapping[str, tuple[str, str | None]] | None = None) -> Path:
    """Download and unpack VOC 2012 (and SBD with ``sbd=True`` or the split ``train_aug``) into
    `root`; return ``root/VOCdevkit/VOC2012``.

    As `download_voc2007`: tarballs are kept in ``root/downloads/``, resumed after
    an interruption and md5-checked, then unpacked safely into `root`; a part
    already complete (every file its lists name is present) is not downloaded again.

    Args:
        root: folder for ``VOCdevkit/VOC2012``, ``benchmark_RELEASE`` and ``downloads/``.
        splits: some of ``"train"``, ``"val"``, ``"trainval"`` (all in VOC 2012's trainval
            tarball) and ``"train_aug"`` (that tarball and SBD's).
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
    splits = _split_names(splits, (*VOC2012_SPLITS, TRAIN_AUG), "VOC 2012")
    parts = {VOC2012_TAR: _missing(voc, VOC2012, VOC2012_SPLITS)}
    if sbd or TRAIN_AUG in splits:
        parts[SBD_TGZ] = _missing(voc, VOC2012, [TRAIN_AUG], also=root / SBD_DIR)
    fetch_and_unpack(parts, root, VOC2012_FILES, files=files, base_url=base_url, progress=progress)
    return voc


def _split_names(splits: Iterable[str] | str, known, title: str) -> tuple[str, ...]:
    """`splits` as a tuple, each one of `known`; `ValueError` naming the others."""
    splits = (splits,) if isinstance(splits, str) else tuple(splits)
    unknown = sorted(set(splits) - set(known))
    if unknown or not splits:
        raise ValueError(f"Unknown {title} split(s) {unknown or splits}: use some of {list(known)}.")
    return splits


def _missing(voc: Path, spec: DatasetSpec, splits, *, also: Path | None = None):
    """A check for `fetch_and_unpack`: what of `splits` is missing under `voc` (and whether
    the folder `also` exists), or None."""

    def missing():
        if also is not None and not also.is_dir():
            return f"{also} does not exist"
        problem = spec.problem(voc, splits)
        return None if problem is None else f"{problem.rstrip('.')} (splits {', '.join(splits)})"

    return missing


VOC2007 = DatasetSpec("voc2007", VOC_CLASSES, VOC_COLORMAP, Layout(voc_root, voc_splits, voc_samples, "VOCdevkit/VOC2007"),
                      VOID, "JPEGImages", "SegmentationClass", root_env="VOC_ROOT", download=download_voc2007,
                      sample_root=SAMPLE_ROOT, example_class="horse",
                      # the images the reference notebook ran inference on (trainval JPEGs without masks)
                      inference_images=("JPEGImages/000347.jpg", "JPEGImages/001707.jpg",
                                        "JPEGImages/001950.jpg"))  # fmt: skip
VOC2012 = DatasetSpec("voc2012", VOC_CLASSES, VOC_COLORMAP,
                      Layout(voc_root, voc2012_splits, voc2012_samples, "VOCdevkit/VOC2012"),
                      VOID, "JPEGImages", "SegmentationClass", root_env="VOC2012_ROOT", env_vars=(SBD_ENV,),
                      download=download_voc2012, example_class="horse")  # fmt: skip
