"""Segmentation losses that ignore void pixels (label 255).

Both accept sparse masks (batch, H, W) with void 255, or one-hot masks
(batch, H, W, C) whose void pixels are all-zero, and average over the valid
pixels of the batch only.

>>> from fcnseg.losses import MaskedCrossEntropy
>>> model.compile(optimizer="adam", loss=MaskedCrossEntropy())  # doctest: +SKIP
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from fcnseg.datasets import VOID


def sparse_labels(y_true, num_classes: int):
    """(labels, valid) from sparse or one-hot targets: int32 ids and a bool mask of non-void pixels."""
    if len(y_true.shape) == 4 and y_true.shape[-1] == num_classes:
        valid = ops.max(y_true, axis=-1) > 0
        labels = ops.argmax(y_true, axis=-1)
    else:
        if len(y_true.shape) == 4:  # (batch, H, W, 1)
            y_true = ops.squeeze(y_true, -1)
        labels = ops.cast(y_true, "int32")
        valid = labels != VOID
    labels = ops.where(valid, labels, 0)
    return ops.cast(labels, "int32"), valid


def _mean_over_valid(pixel_loss, weights):
    """Per-pixel losses scaled so that Keras' mean over all pixels is the weighted mean over valid ones."""
    total = ops.cast(ops.size(weights), "float32")
    return pixel_loss * weights * total / ops.maximum(ops.sum(weights), 1e-6)


@keras.saving.register_keras_serializable(package="fcn")
class MaskedCrossEntropy(keras.losses.Loss):
    """Softmax cross-entropy on logits, void ignored, optional per-class weights.

    Args:
        class_weights: one weight per class (e.g. median-frequency balancing
            for rare classes such as CamVid's Pole and SignSymbol), or None.
    """

    def __init__(self, class_weights=None, name="masked_cross_entropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.class_weights = None if class_weights is None else [float(w) for w in class_weights]

    def call(self, y_true, y_pred):
        y_pred = ops.cast(y_pred, "float32")
        labels, valid = sparse_labels(y_true, y_pred.shape[-1])
        pixel_loss = keras.losses.sparse_categorical_crossentropy(labels, y_pred, from_logits=True)
        weights = ops.cast(valid, "float32")
        if self.class_weights is not None:
            weights = weights * ops.take(ops.convert_to_tensor(self.class_weights, "float32"), labels)
        return _mean_over_valid(pixel_loss, weights)

    def get_config(self):
        return {**super().get_config(), "class_weights": self.class_weights}


@keras.saving.register_keras_serializable(package="fcn")
class MaskedBinaryCrossEntropy(keras.losses.Loss):
    """The reference notebook's loss: BCE-with-logits on one-hot targets, void ignored.

    Every class channel is an independent sigmoid, averaged over classes and
    over the valid pixels (the reference averaged over void pixels too).
    """

    def __init__(self, name="masked_binary_cross_entropy", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        y_pred = ops.cast(y_pred, "float32")
        labels, valid = sparse_labels(y_true, y_pred.shape[-1])
        one_hot = ops.one_hot(labels, y_pred.shape[-1])
        pixel_loss = ops.mean(ops.binary_crossentropy(one_hot, y_pred, from_logits=True), axis=-1)
        return _mean_over_valid(pixel_loss, ops.cast(valid, "float32"))


def median_frequency_weights(pixel_counts, *, power=1.0):
    """Median-frequency class weights (Eigen & Fergus; SegNet on CamVid): (median(f) / f_c) ** power.

    ``power=0.5`` softens the balancing (rare classes still gain, common ones
    lose less). Classes with no pixels get weight 0.

    >>> median_frequency_weights([10, 30, 60]).round(2).tolist()
    [3.0, 1.0, 0.5]
    >>> median_frequency_weights([10, 40, 160], power=0.5).tolist()
    [2.0, 1.0, 0.5]
    """
    freq = np.asarray(pixel_counts, np.float64)
    freq = freq / max(freq.sum(), 1.0)
    present = freq > 0
    weights = np.zeros_like(freq)
    weights[present] = (np.median(freq[present]) / freq[present]) ** power
    return weights.astype(np.float32)
