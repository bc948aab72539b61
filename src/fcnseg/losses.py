"""Segmentation losses on sparse labels (class ids, void 255), void ignored.

``"sparse_ce"`` is Keras' own `SparseCategoricalCrossentropy` with
``ignore_class=255``; ``"bce"`` is the reference notebook's binary
cross-entropy, one sigmoid per class, taking the same sparse labels. Both
average over the non-void pixels, weighted by the per-pixel ``sample_weight``
that ``make_dataset(..., class_weights=...)`` yields (``mean_with_sample_weight``).

>>> from fcnseg.losses import make_loss
>>> model.compile(optimizer="adam", loss=make_loss("sparse_ce"))  # doctest: +SKIP
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from fcnseg.checks import LOSSES, one_of
from fcnseg.datasets import VOID
from fcnseg.options import Options


def make_loss(loss: str = Options.loss) -> keras.losses.Loss:
    """``"sparse_ce"``: softmax cross-entropy; ``"bce"``: the reference's BCE; both on
    sparse labels with void ignored.

    >>> make_loss("bce").name
    'bce'
    """
    if one_of("loss", loss, LOSSES) == "sparse_ce":
        return keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, ignore_class=VOID, reduction="mean_with_sample_weight", name="sparse_ce"
        )
    return SparseBinaryCrossentropy()


@keras.saving.register_keras_serializable(package="fcn")
class SparseBinaryCrossentropy(keras.losses.Loss):
    """The reference notebook's loss: BCE-with-logits of each class channel against the
    one-hot of sparse labels, averaged over classes and over the valid pixels (the
    reference averaged over void pixels too, and one-hot-encoded in its pipeline).

    Keras' `BinaryCrossentropy` has no ``ignore_class`` and wants one-hot targets,
    hence this class.
    """

    def __init__(self, name="bce", reduction="mean_with_sample_weight", **kwargs):
        super().__init__(name=name, reduction=reduction, **kwargs)

    def __call__(self, y_true, y_pred, sample_weight=None):
        valid = ops.cast(ops.not_equal(ops.reshape(y_true, ops.shape(y_pred)[:-1]), VOID), "float32")
        return super().__call__(y_true, y_pred, valid if sample_weight is None else valid * sample_weight)

    def call(self, y_true, y_pred):
        labels = ops.cast(ops.reshape(y_true, ops.shape(y_pred)[:-1]), "int32")
        one_hot = ops.one_hot(ops.where(labels == VOID, 0, labels), y_pred.shape[-1])
        return ops.mean(ops.binary_crossentropy(one_hot, ops.cast(y_pred, "float32"), from_logits=True), axis=-1)


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
