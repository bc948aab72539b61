"""Dataset descriptions and file loading: PASCAL VOC 2007, VOC 2012 with SBD, CamVid, any folder pair.

A dataset is described once by a `DatasetSpec` (class names, colormap, which raw
label is void, where images, masks and splits live). Everything downstream
(pipeline, metrics, plots) works from that description. After loading, void is
always **255**, whatever the raw file used (CamVid's 11 becomes 255).

Example:

>>> from fcnseg.datasets import read_split, load_image, load_mask, get_spec
>>> samples = read_split("data/VOCdevkit/VOC2007", "val")           # doctest: +SKIP
>>> image = load_image(samples[0].image_path)                        # doctest: +SKIP
>>> mask = load_mask(samples[0].mask_path, dataset="voc2007")        # doctest: +SKIP
>>> get_spec("camvid").classes[:3]
('Sky', 'Building', 'Pole')
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import NamedTuple, Sequence

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

VOID = 255
# One real VOC 2007 test image and its mask, shipped with the package for smoke tests.
SAMPLE_ROOT = Path(__file__).resolve().parent / "sample" / "voc2007"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car",
    "cat", "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person",
    "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip


def _voc_colormap(n: int = 21) -> np.ndarray:
    """The PASCAL VOC palette: bit-interleaved RGB for label `i` (devkit's labelcolormap)."""
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


VOC_COLORMAP = _voc_colormap()

CAMVID_CLASSES = (
    "Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence",
    "Car", "Pedestrian", "Bicyclist",
)  # fmt: skip
CAMVID_COLORMAP = np.array(
    [
        (128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222),
        (128, 128, 0), (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0),
        (0, 128, 192),
    ],
    np.uint8,
)  # fmt: skip


class Sample(NamedTuple):
    """One labelled image of a split."""

    id: str
    image_path: Path
    mask_path: Path


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """How a segmentation dataset is laid out and labelled.

    Two layouts are known:

    - ``"voc"``: ``ImageSets/Segmentation/<split>.txt`` lists ids, images are
      ``JPEGImages/<id>.jpg`` and masks ``SegmentationClass/<id>.png``.
    - ``"voc_sbd"``: the ``"voc"`` layout (VOC 2012) plus the ``train_aug``
      split with SBD's ``.mat`` masks (see `fcnseg.voc2012`).
    - ``"folders"``: ``image_dir`` and ``mask_dir`` are folder templates with a
      ``{split}`` field (CamVid: ``"{split}"`` and ``"{split}annot"``); an image
      and its mask share a file stem, and the split is whatever the folder holds.

    Example (your own data: ``root/train/images/*.jpg`` with ``root/train/masks/*.png``):

    >>> spec = folder_dataset(["background", "road"], name="roads")
    >>> spec.num_classes
    2
    """

    name: str
    classes: tuple[str, ...]
    colormap: np.ndarray
    void_label: int = VOID
    layout: str = "folders"
    image_dir: str = "{split}/images"
    mask_dir: str = "{split}/masks"
    root_env: str | None = None
    eval_split: str = "val"  # the split scores are reported on (CamVid: test)

    @property
    def num_classes(self) -> int:
        return len(self.classes)


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
        colormap = _voc_colormap(len(classes))
    colormap = np.asarray(colormap, np.uint8)
    if colormap.shape != (len(classes), 3):
        raise ValueError(f"colormap must have shape ({len(classes)}, 3), got {colormap.shape}.")
    return DatasetSpec(name, classes, colormap, void_label, "folders", image_dir, mask_dir)


VOC2007 = DatasetSpec(
    "voc2007", VOC_CLASSES, VOC_COLORMAP, VOID, "voc",
    "JPEGImages", "SegmentationClass", root_env="VOC_ROOT",
)  # fmt: skip
CAMVID = DatasetSpec(
    "camvid", CAMVID_CLASSES, CAMVID_COLORMAP, 11, "folders",
    "{split}", "{split}annot", root_env="CAMVID_ROOT", eval_split="test",
)  # fmt: skip
# VOC 2012, and with SBD its train_aug split: the FCN paper's training data (fcnseg.voc2012).
VOC2012 = DatasetSpec(
    "voc2012", VOC_CLASSES, VOC_COLORMAP, VOID, "voc_sbd",
    "JPEGImages", "SegmentationClass", root_env="VOC2012_ROOT",
)  # fmt: skip
DATASETS = {spec.name: spec for spec in (VOC2007, CAMVID, VOC2012)}
VOC_YEARS = {"voc": "VOC2007", "voc_sbd": "VOC2012"}  # layout -> the folder under VOCdevkit/


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
    year = VOC_YEARS.get(spec.layout)
    return Path("data") / (f"VOCdevkit/{year}" if year else spec.name)


def resolve_root(root: str | os.PathLike, dataset: str | DatasetSpec = "voc2007") -> Path:
    """Check that `root` has the dataset's layout; accept a VOC folder above ``VOCdevkit``."""
    spec = get_spec(dataset)
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"Dataset root {root} does not exist (dataset {spec.name!r}).")
    if spec.layout in VOC_YEARS:
        year = VOC_YEARS[spec.layout]
        download = {"VOC2007": "fcnseg.download.download_voc2007", "VOC2012": "fcnseg.voc2012.download_voc2012"}[year]
        for candidate in (root, root / year, root / "VOCdevkit" / year):
            if (candidate / "ImageSets" / "Segmentation").is_dir():
                return candidate
        raise FileNotFoundError(
            f"{root} is not a PASCAL VOC folder: no ImageSets/Segmentation in it, in "
            f"{root / year} or in {root / 'VOCdevkit' / year}. Download it with "
            f"{download}(...) or set {spec.root_env}."
        )
    return root


def available_splits(root, dataset: str | DatasetSpec = "voc2007") -> list[str]:
    """The split names present under `root`."""
    spec = get_spec(dataset)
    root = resolve_root(root, spec)
    if spec.layout == "voc_sbd":
        from fcnseg.voc2012 import available_splits_voc2012

        return available_splits_voc2012(root)
    if spec.layout == "voc":
        return sorted(p.stem for p in (root / "ImageSets" / "Segmentation").glob("*.txt"))
    return sorted(
        p.name
        for p in root.iterdir()
        if (root / spec.image_dir.format(split=p.name)).is_dir()
        and (root / spec.mask_dir.format(split=p.name)).is_dir()
    )


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
    if spec.layout == "voc":
        samples = _voc_split(root, split, spec)
    elif spec.layout == "voc_sbd":  # VOC 2012 and train_aug (fcnseg.voc2012)
        from fcnseg.voc2012 import read_split_voc2012

        samples = read_split_voc2012(root, split)
    else:
        samples = _folder_split(root, split, spec)
    if not samples:
        raise ValueError(f"Split {split!r} of {spec.name} under {root} is empty.")
    return samples


def _unknown_split(root: Path, split: str, spec: DatasetSpec) -> ValueError:
    return ValueError(
        f"Unknown split {split!r} for {spec.name} under {root}; "
        f"available: {available_splits(root, spec)}."
    )


def _voc_split(root: Path, split: str, spec: DatasetSpec) -> list[Sample]:
    list_file = root / "ImageSets" / "Segmentation" / f"{split}.txt"
    if not list_file.is_file():
        raise _unknown_split(root, split, spec)
    ids = [line.strip() for line in list_file.read_text().splitlines() if line.strip()]
    return [
        Sample(i, root / spec.image_dir / f"{i}.jpg", root / spec.mask_dir / f"{i}.png")
        for i in ids
    ]


def _folder_split(root: Path, split: str, spec: DatasetSpec) -> list[Sample]:
    image_dir = root / spec.image_dir.format(split=split)
    mask_dir = root / spec.mask_dir.format(split=split)
    if not image_dir.is_dir() or not mask_dir.is_dir():
        raise _unknown_split(root, split, spec)
    images = {p.stem: p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
    masks = {p.stem: p for p in mask_dir.iterdir() if p.suffix.lower() == ".png"}
    unmatched = sorted(set(images) ^ set(masks))
    if unmatched:
        raise FileNotFoundError(
            f"{len(unmatched)} file(s) of split {split!r} have an image but no mask or a mask "
            f"but no image (in {image_dir} / {mask_dir}), e.g. {unmatched[:5]}."
        )
    return [Sample(stem, images[stem], masks[stem]) for stem in sorted(images)]


def load_image(path) -> np.ndarray:
    """Read an image file as RGB uint8 of shape (H, W, 3).

    Grayscale is repeated to three channels, RGBA loses its alpha, 16-bit
    images are scaled to 8 bits. Anything unreadable raises `ValueError`
    naming the file.

    >>> load_image(SAMPLE_ROOT / "JPEGImages/001763.jpg").shape  # doctest: +SKIP
    (375, 500, 3)
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Image file not found: {path}")
    data = np.fromfile(path, np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise ValueError(f"Cannot decode image {path}: the file is corrupt or not an image.")
    try:
        return to_rgb_uint8(image, bgr=True)
    except ValueError as e:
        raise ValueError(f"Unsupported image {path}: {e}") from None


def to_rgb_uint8(image: np.ndarray, *, bgr: bool = False) -> np.ndarray:
    """Convert an image array to RGB uint8 (H, W, 3).

    Accepts (H, W), (H, W, 1), (H, W, 3) and (H, W, 4); uint8, uint16 (scaled
    by 1/257) and float (values in [0, 1] are scaled by 255, larger values are
    taken as 0..255). ``bgr=True`` says the channels are OpenCV's BGR(A) order.
    """
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] not in (3, 4)):
        raise ValueError(
            f"expected an image of shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {image.shape}"
        )
    if min(image.shape[:2]) < 1:
        raise ValueError(f"image has an empty side: shape {image.shape}")
    if image.dtype == np.uint16:
        image = (image.astype(np.float32) / 257.0).round().astype(np.uint8)
    elif np.issubdtype(image.dtype, np.floating):
        if not np.isfinite(image).all():
            raise ValueError("image holds NaN or infinite values")
        scale = 255.0 if image.max(initial=0.0) <= 1.0 else 1.0
        image = np.clip(image * scale, 0, 255).round().astype(np.uint8)
    elif image.dtype == np.bool_ or np.issubdtype(image.dtype, np.integer):
        if image.dtype != np.uint8 and (image.min(initial=0) < 0 or image.max(initial=0) > 255):
            raise ValueError(f"integer image of dtype {image.dtype} has values outside 0..255")
        image = image.astype(np.uint8)
    else:
        raise ValueError(f"unsupported image dtype {image.dtype}")
    if image.ndim == 2:
        return np.repeat(image[..., None], 3, axis=-1)
    if image.shape[-1] == 4:
        image = image[..., :3]
    return np.ascontiguousarray(image[..., ::-1] if bgr else image)


def load_mask(path, dataset: str | DatasetSpec = "voc2007") -> np.ndarray:
    """Read a label mask as (H, W) uint8 class indices, void = 255.

    Palette PNGs (VOC) are read as their palette indices, never by matching
    RGB colours. SBD's ``.mat`` masks (``GTcls.Segmentation``) are read with
    `fcnseg.voc2012.read_sbd_mask`. The dataset's own void label becomes 255, and any value that
    is neither a class nor void raises `ValueError` naming the file.

    >>> mask = load_mask(SAMPLE_ROOT / "SegmentationClass/001763.png")  # doctest: +SKIP
    >>> sorted(set(mask.flat))                                                 # doctest: +SKIP
    [0, 8, 12, 18, 20, 255]
    """
    spec = get_spec(dataset)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Mask file not found: {path}")
    if path.suffix.lower() == ".mat":
        from fcnseg.voc2012 import read_sbd_mask

        return _to_labels(read_sbd_mask(path), spec, path)
    try:
        with Image.open(path) as im:
            if im.mode not in ("P", "L", "1", "I;16", "I"):
                raise ValueError(
                    f"Mask {path} has mode {im.mode}: expected a single-channel index PNG "
                    "(palette or grayscale) whose values are class ids."
                )
            mask = np.array(im)
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise ValueError(f"Cannot decode mask {path}: {e}") from None
    return _to_labels(mask, spec, path)


def _to_labels(mask: np.ndarray, spec: DatasetSpec, path) -> np.ndarray:
    mask = mask.astype(np.int64)
    labels = np.where(mask == spec.void_label, VOID, mask)
    bad = (labels >= spec.num_classes) & (labels != VOID)
    if bad.any():
        values = sorted(set(np.unique(labels[bad]).tolist()))[:10]
        raise ValueError(
            f"Mask {path} has values {values} outside the {spec.num_classes} classes of "
            f"{spec.name} (0..{spec.num_classes - 1}) and void ({spec.void_label})."
        )
    return labels.astype(np.uint8)


def load_sample(sample: Sample, dataset: str | DatasetSpec = "voc2007"):
    """Load ``(image, mask)`` of a `Sample`, checking that their sizes agree."""
    image = load_image(sample.image_path)
    mask = load_mask(sample.mask_path, dataset)
    if image.shape[:2] != mask.shape:
        raise ValueError(
            f"Mask {sample.mask_path} is {mask.shape[1]}x{mask.shape[0]} but its image "
            f"{sample.image_path} is {image.shape[1]}x{image.shape[0]} (width x height)."
        )
    return image, mask


def check_samples(samples: Sequence[Sample], dataset: str | DatasetSpec = "voc2007") -> None:
    """Check, before any training, that every file exists and image/mask sizes agree.

    Reads only file headers, so it is quick even for thousands of files (SBD's
    ``.mat`` masks have none and are read whole). Raises `FileNotFoundError`
    or `ValueError` naming the first offending files.
    """
    missing = [str(p) for s in samples for p in (s.image_path, s.mask_path) if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} file(s) are missing, e.g. {missing[:5]}")
    for s in samples:
        sizes = []
        for p in (s.image_path, s.mask_path):
            if p.suffix.lower() == ".mat":
                from fcnseg.voc2012 import sbd_mask_size

                sizes.append(sbd_mask_size(p))
                continue
            try:
                with Image.open(p) as im:
                    sizes.append(im.size)
            except (UnidentifiedImageError, OSError) as e:
                raise ValueError(f"Cannot read {p}: the file is corrupt or not an image ({e}).")
        if sizes[0] != sizes[1]:
            raise ValueError(
                f"Mask {s.mask_path} is {sizes[1][0]}x{sizes[1][1]} but its image "
                f"{s.image_path} is {sizes[0][0]}x{sizes[0][1]} (width x height)."
            )
