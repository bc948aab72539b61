"""Score a model on a dataset split at each image's original resolution.

>>> from src.evaluate import evaluate
>>> scores = evaluate(model, split="test", dataset="camvid")   # doctest: +SKIP
>>> scores["mean_iou"], scores["iou_per_class"]["Road"]         # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np

from src.datasets import default_root, get_spec, load_sample, read_split
from src.metrics import confusion_matrix, summarize
from src.predict import predict_masks


def evaluate(
    model,
    root=None,
    split: str = "val",
    *,
    dataset="voc2007",
    input_size=None,
    batch_size: int = 4,
    max_images: int | None = None,
) -> dict:
    """Predict every image of a split and score it against its untouched mask.

    Predictions are made at the image's own size (or at ``input_size`` with
    logits resized back), so the score is at the original resolution with void
    ignored. Returns ``mean_iou``, ``frequency_weighted_iou``,
    ``pixel_accuracy``, ``iou_per_class`` (name -> IoU or None), the confusion
    matrix, and how many images were scored.
    """
    spec = get_spec(dataset)
    samples = read_split(default_root(spec) if root is None else root, split, spec)
    samples = samples[:max_images] if max_images else samples
    cm = np.zeros((spec.num_classes, spec.num_classes), np.int64)
    for start in range(0, len(samples), batch_size):
        pairs = [load_sample(s, spec) for s in samples[start : start + batch_size]]
        predictions = predict_masks(model, [image for image, _ in pairs], input_size=input_size, batch_size=batch_size)
        for (_, mask), prediction in zip(pairs, predictions):
            cm += confusion_matrix(mask, prediction, spec.num_classes)
    return {**summarize(cm, spec.classes), "num_images": len(samples), "split": split, "dataset": spec.name}
