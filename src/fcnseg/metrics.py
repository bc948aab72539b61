"""Segmentation scores from a confusion matrix: IoU per class, mean IoU,
frequency-weighted IoU and pixel accuracy, plus the Keras metric used in training.

Void pixels (255 by default) are left out of every figure.

>>> import numpy as np
>>> cm = confusion_matrix(np.array([0, 0, 1, 255]), np.array([0, 1, 1, 0]), num_classes=2)
>>> cm.tolist()
[[1, 1], [0, 1]]
>>> round(mean_iou(cm), 3), round(pixel_accuracy(cm), 3)
(0.5, 0.667)
"""

from __future__ import annotations

import keras
import numpy as np

from fcnseg.datasets import VOID


def confusion_matrix(y_true, y_pred, num_classes: int = 21, ignore_index: int = VOID) -> np.ndarray:
    """(num_classes, num_classes) int64 counts, rows = truth, columns = prediction.

    Works on arrays of any (equal) shape; add the matrices of several batches
    to accumulate over a whole dataset. Pixels whose truth is `ignore_index`
    are skipped; a predicted id outside the classes raises `ValueError`.
    """
    y_true = np.asarray(y_true).ravel().astype(np.int64)
    y_pred = np.asarray(y_pred).ravel().astype(np.int64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred differ in size: {y_true.size} vs {y_pred.size}.")
    keep = y_true != ignore_index
    y_true, y_pred = y_true[keep], y_pred[keep]
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.size and (y.min() < 0 or y.max() >= num_classes):
            raise ValueError(f"{name} has ids outside 0..{num_classes - 1} (and {ignore_index}).")
    counts = np.bincount(y_true * num_classes + y_pred, minlength=num_classes**2)
    return counts.reshape(num_classes, num_classes)


def iou_per_class(cm: np.ndarray) -> np.ndarray:
    """IoU of each class: TP / (TP + FP + FN); NaN for a class absent from truth and prediction."""
    cm = np.asarray(cm, np.float64)
    tp = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / union, np.nan)


def mean_iou(cm: np.ndarray) -> float:
    """Mean IoU over the classes present in truth or prediction (the FCN paper's score)."""
    iou = iou_per_class(cm)
    if np.isnan(iou).all():
        return float("nan")
    return float(np.nanmean(iou))


def frequency_weighted_iou(cm: np.ndarray) -> float:
    """IoU averaged with each class weighted by its share of true pixels.

    This is sklearn's ``jaccard_score(average="weighted")``, which the reference
    notebook reported as "val IoU": large classes (background, road, sky) dominate it.
    """
    cm = np.asarray(cm, np.float64)
    support = cm.sum(1)
    if support.sum() == 0:
        return float("nan")
    iou = np.nan_to_num(iou_per_class(cm))
    return float((support * iou).sum() / support.sum())


def pixel_accuracy(cm: np.ndarray) -> float:
    """Share of non-void pixels whose predicted class is right."""
    cm = np.asarray(cm, np.float64)
    total = cm.sum()
    return float(np.trace(cm) / total) if total else float("nan")


def summarize(cm: np.ndarray, classes) -> dict:
    """All scores of a confusion matrix as a JSON-ready dict."""
    def number(value):
        return None if np.isnan(value) else float(value)

    return {
        "mean_iou": number(mean_iou(cm)),
        "frequency_weighted_iou": number(frequency_weighted_iou(cm)),
        "pixel_accuracy": number(pixel_accuracy(cm)),
        "iou_per_class": {name: number(v) for name, v in zip(classes, iou_per_class(cm))},
        "confusion_matrix": np.asarray(cm).tolist(),
    }


def mean_iou_metric(num_classes: int, name: str = "mean_iou", **kwargs) -> keras.metrics.MeanIoU:
    """Mean IoU for training: Keras' `MeanIoU` set for logits and sparse labels with void 255.

    It agrees with `mean_iou` on the same data: void is ignored, and classes
    absent from both truth and prediction are left out of the mean.

    >>> model.compile(..., metrics=[mean_iou_metric(num_classes=21)])  # doctest: +SKIP
    """
    return keras.metrics.MeanIoU(num_classes, name=name, ignore_class=VOID, sparse_y_true=True, sparse_y_pred=False,
                                 **kwargs)  # fmt: skip
