"""A run's results in words and on disk: ``metrics.json`` (one schema, written by
`write_metrics` for the notebook and ``fcnseg-train``), the score table with
the all-background baseline and the reference's figure, and the examples the
notebook shows.

>>> print(score_table({"mean_iou": 0.5, "frequency_weighted_iou": 0.8, "pixel_accuracy": 0.9}))
metric                       model   reference notebook
mean IoU                     0.500   not reported
frequency-weighted IoU       0.800   0.67-0.72 ("val IoU")
pixel accuracy               0.900   not reported
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fcnseg.datasets import SAMPLE_ROOT, VOID, Sample, available_splits, get_spec, load_mask, read_split
from fcnseg.files import portable_path, write_json
from fcnseg.locate import data_problem
from fcnseg.pretrained import shipped_name, street_images

# The images the reference notebook ran its inference cell on (VOC 2007 trainval JPEGs;
# they have no segmentation mask).
REFERENCE_INFERENCE_IDS = ("000347", "001707", "001950")
# "val IoU" the reference notebook reported: sklearn's jaccard_score(average="weighted").
REFERENCE_VAL_IOU = (0.67, 0.72)
REFERENCE = {"val_iou": list(REFERENCE_VAL_IOU),
             "metric": "sklearn jaccard_score(average='weighted'): a frequency-weighted IoU"}  # fmt: skip
PATHS = ("root", "data_root", "out", "init_from", "checkpoint", "results_dir", "run_dir", "backbone_weights")


def write_metrics(path, scores: dict, *, parameters: dict, encoder: str, train_seconds=None, run_dir=None,
                  **extra) -> dict:
    """Write a run's ``metrics.json`` atomically and return what was written.

    Keys: ``parameters`` (the recipe's options and the run's settings, paths
    recorded portably), ``encoder_weights`` (in words), ``train_seconds``,
    ``best_checkpoint`` (the run's ``best.json``: score and epoch, or None),
    the scores of `fcnseg.evaluation.evaluate`, the reference's figure, then `extra`.

    >>> write_metrics("runs/x/metrics.json", scores, parameters={"epochs": 1}, encoder="random")  # doctest: +SKIP
    """
    record_file = Path(run_dir or ".") / "best.json"
    best = json.loads(record_file.read_text()) if run_dir is not None and record_file.is_file() else None
    parameters = {k: _recordable(k, v) for k, v in parameters.items()}
    record = {"parameters": parameters, "encoder_weights": encoder, "train_seconds": train_seconds,
              "best_checkpoint": best, **scores, "reference_notebook": REFERENCE, **extra}  # fmt: skip
    write_json(path, record)
    return record


def _recordable(key, value):
    if isinstance(value, tuple):
        return list(value)
    if key in PATHS and value not in ("imagenet", None):
        return portable_path(value)
    return getattr(value, "name", value)  # a DatasetSpec by its name


def encoder_label(weights, checkpoint=None) -> str:
    """The encoder weights in words: ImageNet, random, a file name, or a checkpoint's.

    >>> encoder_label(None)
    'random initialisation (no pre-training)'
    """
    if checkpoint is not None:
        checkpoint = Path(checkpoint)
        name = shipped_name(checkpoint) or checkpoint.name
        try:
            record = json.loads((checkpoint.parent / "metrics.json").read_text())
            used = record.get("encoder_weights") or encoder_label(record["parameters"]["backbone_weights"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return f"as trained in checkpoint {name} (initial encoder weights not recorded)"
        return f"{used}, then trained (checkpoint {name})"
    if weights == "imagenet":
        return "ImageNet (Keras VGG16)"
    if weights is None:
        return "random initialisation (no pre-training)"
    return f"{Path(weights).name} (a file, not the Keras ImageNet weights)"


def find_class_example(samples: list[Sample], class_name: str = "horse", dataset="voc2007", *, max_samples: int = 200):
    """``(sample, class_id)``: the sample where `class_name` covers the most pixels.

    Looks at the masks of the first `max_samples` samples. When the class is
    not in the dataset or in none of them, the class covering the most pixels
    of the first sample is used instead (background excluded).

    >>> sample, class_id = find_class_example(read_split(SAMPLE_ROOT, "train"), "horse")
    >>> sample.id, get_spec("voc2007").classes[class_id]
    ('001763', 'dog')
    """
    spec = get_spec(dataset)
    if not samples:
        raise ValueError("find_class_example needs at least one sample.")
    if class_name in spec.classes:
        class_id = spec.classes.index(class_name)
        best, best_count = None, 0
        for sample in samples[:max_samples]:
            count = int((load_mask(sample.mask_path, spec) == class_id).sum())
            if count > best_count:
                best, best_count = sample, count
        if best is not None:
            return best, class_id
    mask = load_mask(samples[0].mask_path, spec)
    counts = np.bincount(mask[mask != VOID].ravel(), minlength=spec.num_classes)
    if spec.classes[0] == "background" and counts[1:].any():
        counts[0] = 0
    return samples[0], int(counts.argmax())


def inference_images(cfg, count: int = 3):
    """``(items, source)``: ``[(id, image_path), ...]`` to run inference on, and where they come from.

    The reference notebook's own images (VOC 2007 ``000347``, ``001707``,
    ``001950``; trainval JPEGs without masks) when they are in the VOC
    folder; otherwise the first `count` images of the test split (VOC, CamVid)
    or, failing that, of the evaluation split. Offline (no dataset), the bundled street photos.
    """
    if not cfg.has_data:
        return [(p.stem, p) for p in street_images()], "the bundled street photos (fcnseg/sample/street)"
    root = Path(cfg.data_root)
    if cfg.dataset == "voc2007":
        paths = [(i, root / "JPEGImages" / f"{i}.jpg") for i in REFERENCE_INFERENCE_IDS]
        present = [(i, p) for i, p in paths if p.is_file()]
        if present:
            return present, "the reference notebook's inference images"
    for split in dict.fromkeys(("test", cfg.eval_split)):
        if split in available_splits(root, cfg.dataset) and data_problem(root, cfg.spec, [split]) is None:
            samples = read_split(root, split, cfg.dataset)[:count]
            return [(s.id, s.image_path) for s in samples], f"the first {len(samples)} image(s) of split {split!r}"
    raise FileNotFoundError(f"No images to run inference on under {root}.")


def baseline_scores(root, split: str, dataset="voc2007", *, class_id: int = 0, max_images: int | None = None) -> dict:
    """Scores of a "model" that predicts `class_id` (background) everywhere, on a split.

    Shows what each metric gives for free: frequency-weighted IoU and pixel
    accuracy reward the dominant class, mean IoU does not.

    >>> {k: round(v, 3) for k, v in baseline_scores(SAMPLE_ROOT, "val").items()}
    {'mean_iou': 0.027, 'frequency_weighted_iou': 0.019, 'pixel_accuracy': 0.137}
    """
    from fcnseg.metrics import confusion_matrix, summarize

    spec = get_spec(dataset)
    samples = read_split(root, split, spec)[:max_images] if max_images else read_split(root, split, spec)
    cm = np.zeros((spec.num_classes, spec.num_classes), np.int64)
    for sample in samples:
        mask = load_mask(sample.mask_path, spec)
        cm += confusion_matrix(mask, np.full_like(mask, class_id), spec.num_classes)
    scores = summarize(cm, spec.classes)
    return {k: scores[k] for k in ("mean_iou", "frequency_weighted_iou", "pixel_accuracy")}


def score_table(scores: dict, baseline: dict | None = None, *, baseline_name: str = "all background") -> str:
    """Mean IoU, frequency-weighted IoU and pixel accuracy side by side, with the reference's figure."""
    def number(value):
        return "  n/a" if value is None else f"{value:.3f}"

    lo, hi = REFERENCE_VAL_IOU
    rows = [
        ("mean IoU", "mean_iou", "not reported"),
        ("frequency-weighted IoU", "frequency_weighted_iou", f'{lo:.2f}-{hi:.2f} ("val IoU")'),
        ("pixel accuracy", "pixel_accuracy", "not reported"),
    ]
    header = f"{'metric':<26} {'model':>7}" + (f"   {baseline_name:>14}" if baseline else "") + "   reference notebook"
    lines = [header]
    for label, key, reference in rows:
        line = f"{label:<26} {number(scores.get(key)):>7}"
        if baseline:
            line += f"   {number(baseline.get(key)):>14}"
        lines.append(f"{line}   {reference}")
    return "\n".join(lines)
