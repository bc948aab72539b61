"""One pass over a split's masks: `check_dataset` stops on what would make training drop
pixels silently (a mask value that is no class, a mask not its image's size, a class that
never appears where void stands in for it, as when masks of 0 and 255 are read as class ids), and `describe_dataset` says what the masks hold. `fcnseg.datasets.pipeline.make_dataset` runs
the check on every split it reads; a scan is kept while no file of the split changes.

>>> from fcnseg.datasets import SAMPLE_ROOT
>>> summary = describe_dataset(SAMPLE_ROOT, "val")
>>> summary.num_masks, summary.sizes, round(summary.void_share, 3), round(summary.class_shares["dog"], 3)
(1, {(500, 375): 1}, 0.049, 0.318)
>>> print(summary)  # doctest: +ELLIPSIS
voc2007 val: 1 mask(s), 500x375 (1)
  background   13.0%
  cat          18.7%
  dog          31.8%
  sofa         30.6%
  tvmonitor     0.9%
  void          4.9%
  no pixels: aeroplane, bicycle, ...
"""

from __future__ import annotations

import dataclasses
import functools
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from fcnseg.datasets.catalog import get_spec, read_split, resolve_root
from fcnseg.datasets.loading import (bad_values_error, check_present, image_size, label_values, read_raw_mask,
                                     size_mismatch, suggest_mask_values, value_counts)  # fmt: skip
from fcnseg.datasets.spec import VOID, DatasetSpec, Sample

VOID_MAJORITY = 0.5  # void above this share of the pixels with a class absent: the masks are misread
UNNAMED_LIMIT = 0.01  # likewise values that mask_values or the colormap do not name (edges of resampled masks: fewer)


@dataclasses.dataclass(frozen=True, repr=False)
class DatasetSummary:
    """What a split's masks hold (`describe_dataset`); prints as a small table.

    ``class_shares`` and ``void_share`` are shares of all mask pixels, ``unnamed_share``
    that of the void pixels whose value ``mask_values`` or the colormap does not name;
    ``raw_values`` maps each raw value found (an RGB tuple for colour masks) to its
    share; ``sizes`` counts the images of each (width, height).
    """

    dataset: str
    split: str
    num_masks: int
    sizes: dict[tuple[int, int], int]
    class_shares: dict[str, float]
    void_share: float
    raw_values: dict
    unnamed_share: float

    @property
    def missing(self) -> list[str]:
        """The classes with no pixel in this split."""
        return [name for name, share in self.class_shares.items() if share == 0]

    def __str__(self) -> str:
        sizes = ", ".join(f"{w}x{h} ({n})" for (w, h), n in sorted(self.sizes.items(), key=lambda kv: -kv[1])[:5])
        width = max(map(len, [*self.class_shares, "void"]))
        rows = [f"  {name:<{width}} {share:6.1%}" for name, share in self.class_shares.items() if share > 0]
        return "\n".join([
            f"{self.dataset} {self.split}: {self.num_masks} mask(s), {sizes}",
            *rows,
            f"  {'void':<{width}} {self.void_share:6.1%}",
            *([f"  no pixels: {', '.join(self.missing)}"] if self.missing else []),
        ])  # fmt: skip

    __repr__ = __str__


def describe_dataset(root, split: str, dataset: str | DatasetSpec = "voc2007") -> DatasetSummary:
    """Per-class pixel shares, image sizes and the void share of a split's masks, as
    `load_mask` decodes them (one pass over the masks, kept while no file changes).

    >>> from fcnseg.datasets import folder_dataset
    >>> describe_dataset("data/roads", "train", dataset=folder_dataset(["background", "road"]))  # doctest: +SKIP
    """
    spec = get_spec(dataset)
    return _summary(_scans(read_split(root, split, spec), spec), spec, split)


def check_dataset(root, split: str, dataset: str | DatasetSpec = "voc2007") -> DatasetSummary:
    """Read every mask of a split once and stop, with one message naming the file, the values
    found and what to pass, when training would drop pixels silently:

    - a mask value that is neither a class id nor void;
    - a mask that is not its image's size;
    - a class that never appears while void covers most pixels, or while the masks hold
      one raw value per class and one of them is read as void (masks of 0 and 255 read
      as class ids: pass ``mask_values={0: 0, 255: 1}`` to `folder_dataset`).

    Returns the split's `DatasetSummary`. Quick: a few seconds for thousands of masks.

    >>> from fcnseg.datasets import SAMPLE_ROOT, folder_dataset
    >>> check_dataset(SAMPLE_ROOT, "val").void_share < 0.5
    True
    >>> spec = folder_dataset(["background", "object"], mask_values={0: 0, 255: 1})
    >>> check_dataset("data/objects", "train", dataset=spec)  # doctest: +SKIP
    """
    spec = get_spec(dataset)
    samples = read_split(root, split, spec)
    scans = _scans(samples, spec)
    where = f"split {split!r} of {spec.name} under {resolve_root(root, spec)}"
    for scan in scans:
        if scan.image_size != scan.mask_size:
            raise size_mismatch(scan.sample, scan.image_size, scan.mask_size)
    found = np.unique(np.concatenate([scan.values for scan in scans]))
    for scan in scans:
        labels = label_values(scan.values, spec)
        if (labels < 0).any():
            raise bad_values_error(scan.sample.mask_path, scan.values[labels < 0], found, spec)
    summary = _summary(scans, spec, split)
    # One raw value per class with the last class the one missing, its value read as void (0/255
    # masks as class ids), values that mask_values or the colormap do not name where a class
    # should be, or void everywhere. (A few frames of a dataset may miss any other class.)
    one_per_class = len(found) == spec.num_classes and summary.missing == [spec.classes[-1]] and summary.void_share > 0
    if summary.missing and (one_per_class or summary.unnamed_share > UNNAMED_LIMIT
                            or summary.void_share > VOID_MAJORITY):  # fmt: skip
        worst = max(scans, key=lambda scan: scan.counts[label_values(scan.values, spec) == VOID].sum() / scan.counts.sum())
        raise ValueError(
            f"In {where}, class(es) {summary.missing} never appear, and void covers {summary.void_share:.0%} of "
            f"the pixels (e.g. {worst.sample.mask_path}); the masks' raw values are {_shown(found[:10], spec)}: "
            f"{_remedy(found, spec)}."
        )
    return summary


def _remedy(found, spec: DatasetSpec) -> str:
    """What to pass so that the raw values `found` become classes, by mask format."""
    if spec.mask_format == "values":
        return f"mask_values={dict(spec.mask_values)} reads the others as void: give each raw value its class id"
    if spec.mask_format == "color":
        return (f"they are not the colours of the colormap {spec.colormap.tolist()}: pass folder_dataset(..., "
                "colormap=...) with each class's colour, class 0 first")  # fmt: skip
    return f"if {spec.void_label} (void) stands for a class, pass {suggest_mask_values(found, spec)}"


def _shown(values, spec: DatasetSpec) -> list:
    """Raw values as a user sees them: colours as RGB tuples."""
    values = [int(v) for v in values]
    return [(v >> 16, v >> 8 & 255, v & 255) for v in values] if spec.mask_format == "color" else values


# --------------------------------------------------------------------------- the scan


@dataclasses.dataclass(frozen=True)
class _Scan:
    """One sample's image and mask sizes (width, height) and its mask's raw values and their pixel counts."""

    sample: Sample
    image_size: tuple[int, int]
    mask_size: tuple[int, int]
    values: np.ndarray
    counts: np.ndarray


def _scans(samples: list[Sample], spec: DatasetSpec) -> tuple[_Scan, ...]:
    """The scan of every sample, reused while the files' sizes and times stay the same."""
    check_present(samples)
    stamps = tuple((s, *_stamp(s.image_path), *_stamp(s.mask_path)) for s in samples)
    return _cached_scans(stamps, "color" if spec.mask_format == "color" else "index")


def _stamp(path: Path) -> tuple[int, int]:
    info = path.stat()
    return info.st_mtime_ns, info.st_size


@functools.lru_cache(maxsize=16)
def _cached_scans(stamps: tuple, reading: str) -> tuple[_Scan, ...]:
    """`reading`: the mask format to read by, "color" or "index" (for "values" as well: the same raw values)."""
    with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:  # decoding releases the GIL
        return tuple(pool.map(lambda stamp: _scan(stamp[0], reading), stamps))


def _scan(sample: Sample, reading: str) -> _Scan:
    raw = read_raw_mask(sample.mask_path, reading)
    return _Scan(sample, image_size(sample.image_path), raw.shape[::-1], *value_counts(raw))


def _summary(scans, spec: DatasetSpec, split: str) -> DatasetSummary:
    class_pixels = np.zeros(spec.num_classes + 1, np.int64)  # the last: void
    raw: dict[int, int] = {}
    unnamed = 0
    sizes: dict[tuple[int, int], int] = {}
    for scan in scans:
        labels = label_values(scan.values, spec)
        labels = np.where(labels == VOID, spec.num_classes, labels)
        np.add.at(class_pixels, labels[labels >= 0], scan.counts[labels >= 0])
        unnamed += scan.counts[_unnamed(scan.values, spec)].sum()
        for value, count in zip(scan.values.tolist(), scan.counts.tolist()):
            raw[value] = raw.get(value, 0) + count
        sizes[scan.image_size] = sizes.get(scan.image_size, 0) + 1
    total = max(sum(raw.values()), 1)
    shares = class_pixels / total
    shown = dict(zip(_shown(np.array(sorted(raw)), spec), (raw[v] / total for v in sorted(raw))))
    return DatasetSummary(spec.name, split, len(scans), sizes, dict(zip(spec.classes, shares[:-1].tolist())),
                          float(shares[-1]), shown, float(unnamed / total))  # fmt: skip


def _unnamed(values, spec: DatasetSpec) -> np.ndarray:
    """Which raw values are void because ``mask_values`` or the colormap does not name them."""
    if spec.mask_format == "index":
        return np.zeros(len(values), bool)
    named = label_values(values, spec) != VOID
    if spec.mask_format == "values":
        named |= np.isin(values, [raw for raw, _ in spec.mask_values])
    return ~named
