"""Segmentation losses on sparse labels (class ids, void 255), void ignored.

``"sparse_ce"`` is Keras' own `SparseCategoricalCrossentropy` with
``ignore_class=255``; ``"bce"`` is the reference notebook's binary
cross-entropy, one sigmoid per class, taking the same sparse labels. Both
average over the non-void pixels, weighted by the per-pixel ``sample_weight``
that ``make_dataset(..., class_weights=...)`` yields (``mean_with_sample_weight``).
For a rare foreground (a small object on a large background): ``"dice"``,
``"dice_ce"`` and ``"focal"``, Keras' `Dice` and `CategoricalFocalCrossentropy`
on the same sparse labels with void ignored.

>>> from fcnseg.training.losses import make_loss
>>> model.compile(optimizer="adam", loss=make_loss("sparse_ce"))  # doctest: +SKIP
"""

from __future__ import annotations

import keras
from keras import ops

from fcnseg.checks import LOSSES, one_of
from fcnseg.datasets import VOID
from fcnseg.options import Options


def make_loss(loss: str = Options.loss) -> keras.losses.Loss:
    """A loss on sparse labels (class ids, void 255) that ignores void, by name (`LOSSES`):

    - ``"sparse_ce"``: softmax cross-entropy (Keras' `SparseCategoricalCrossentropy`);
    - ``"bce"``: the reference notebook's BCE, one sigmoid per class;
    - ``"dice"``: soft Dice of the softmax (Keras' `Dice`), per class over the batch,
      averaged over the classes, so a rare foreground weighs as much as the background;
    - ``"dice_ce"``: ``"dice"`` plus ``"sparse_ce"`` (the cross-entropy keeps early
      gradients well behaved);
    - ``"focal"``: Keras' `CategoricalFocalCrossentropy` (gamma 2): confident, easy
      pixels (a large background) count less.

    >>> make_loss("bce").name, make_loss("dice_ce").name
    ('bce', 'dice_ce')
    """
    loss = one_of("loss", loss, LOSSES)
    if loss == "sparse_ce":
        return keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, ignore_class=VOID, reduction="mean_with_sample_weight", name="sparse_ce"
        )
    return {"bce": SparseBinaryCrossentropy, "dice": SparseDice, "dice_ce": DiceCrossentropy,
            "focal": SparseFocalCrossentropy}[loss]()  # fmt: skip


def _one_hot_and_weights(y_true, y_pred, sample_weight):
    """Sparse labels of logits `y_pred` as one-hot rows (void: all zero) and each pixel's
    weight: 0 on void, else its `sample_weight` (default 1)."""
    labels = ops.cast(ops.reshape(y_true, ops.shape(y_pred)[:-1]), "int32")
    valid = ops.cast(ops.not_equal(labels, VOID), "float32")
    one_hot = ops.one_hot(ops.where(labels == VOID, 0, labels), y_pred.shape[-1]) * valid[..., None]
    return one_hot, valid if sample_weight is None else valid * ops.cast(sample_weight, "float32")


@keras.saving.register_keras_serializable(package="fcn")
class SparseDice(keras.losses.Loss):
    """Keras' soft `Dice` of the softmax of logits against sparse labels, per class over the
    whole batch (``axis=(0, 1, 2)``), averaged over the classes. Void pixels (and pixels of
    weight 0) count in neither the prediction nor the target; other weights scale both.
    A class with no pixel in the batch adds a constant 1 (no gradient).
    """

    def __init__(self, name="dice", **kwargs):
        super().__init__(name=name, **kwargs)
        self.dice = keras.losses.Dice(axis=(0, 1, 2))

    def __call__(self, y_true, y_pred, sample_weight=None):
        one_hot, weights = _one_hot_and_weights(y_true, y_pred, sample_weight)
        probabilities = ops.softmax(ops.cast(y_pred, "float32"), axis=-1)
        return self.dice(one_hot * weights[..., None], probabilities * weights[..., None])


@keras.saving.register_keras_serializable(package="fcn")
class SparseFocalCrossentropy(keras.losses.Loss):
    """Keras' `CategoricalFocalCrossentropy` of logits against sparse labels, averaged over the
    non-void pixels (weighted by the per-pixel ``sample_weight``)."""

    def __init__(self, name="focal", **kwargs):
        super().__init__(name=name, **kwargs)
        self.focal = keras.losses.CategoricalFocalCrossentropy(from_logits=True, reduction="mean_with_sample_weight")

    def __call__(self, y_true, y_pred, sample_weight=None):
        one_hot, weights = _one_hot_and_weights(y_true, y_pred, sample_weight)
        return self.focal(one_hot, ops.cast(y_pred, "float32"), sample_weight=weights)


@keras.saving.register_keras_serializable(package="fcn")
class DiceCrossentropy(keras.losses.Loss):
    """`SparseDice` plus the sparse cross-entropy of ``make_loss("sparse_ce")``, void ignored by both."""

    def __init__(self, name="dice_ce", **kwargs):
        super().__init__(name=name, **kwargs)
        self.parts = (SparseDice(), make_loss("sparse_ce"))

    def __call__(self, y_true, y_pred, sample_weight=None):
        return sum(part(y_true, y_pred, sample_weight=sample_weight) for part in self.parts)


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
