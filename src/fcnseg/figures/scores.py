"""A model's scores beside what predicting one class everywhere scores (`baseline_scores`)
and beside the figure the reference notebook reported (`score_table`).

>>> print(score_table({"mean_iou": 0.5, "frequency_weighted_iou": 0.8, "pixel_accuracy": 0.9}))
metric                       model   reference notebook
mean IoU                     0.500   not reported
frequency-weighted IoU       0.800   0.67-0.72 ("val IoU")
pixel accuracy               0.900   not reported
"""

from __future__ import annotations

import numpy as np

from fcnseg.datasets import get_spec, load_mask, read_split

# "val IoU" the reference notebook reported: sklearn's jaccard_score(average="weighted").
REFERENCE_VAL_IOU = (0.67, 0.72)
REFERENCE = {"val_iou": list(REFERENCE_VAL_IOU),
             "metric": "sklearn jaccard_score(average='weighted'): a frequency-weighted IoU"}  # fmt: skip


def baseline_scores(root, split: str, dataset="voc2007", *, class_id: int = 0, max_images: int | None = None) -> dict:
    """Scores of a "model" that predicts `class_id` (background) everywhere, on a split.

    Shows what each metric gives for free: frequency-weighted IoU and pixel
    accuracy reward the dominant class, mean IoU does not.

    >>> from fcnseg.datasets import SAMPLE_ROOT
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
