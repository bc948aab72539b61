"""Tests for fcnseg.metrics and fcnseg.training.losses: hand-computed examples, an independent
per-class implementation, the Keras metric against the NumPy scores, and void handling
(class weights as the per-pixel weights the pipeline yields)."""

import numpy as np
import pytest
import tensorflow as tf

from fcnseg.datasets import VOID
from fcnseg.datasets.pipeline import median_frequency_weights
from fcnseg.training.losses import make_loss
from fcnseg.metrics import (
    confusion_matrix,
    frequency_weighted_iou,
    iou_per_class,
    mean_iou,
    mean_iou_metric,
    pixel_accuracy,
)
from fcnseg.datasets.pipeline import weigh_pixels

rng = np.random.default_rng(0)


def random_labels(shape, num_classes, void_share=0.2, absent=()):
    """Random class ids with some void pixels and without the classes in `absent`."""
    present = [c for c in range(num_classes) if c not in absent]
    labels = rng.choice(present, size=shape)
    labels[rng.random(shape) < void_share] = VOID
    return labels


# ---------------------------------------------------------------- NumPy scores


def test_hand_computed_example():
    # Valid pixels (truth -> prediction): 0->0, 0->1, 1->1, 1->1, 2->0; one void; class 3 absent.
    y_true = np.array([[0, 0, 1], [1, 2, VOID]])
    y_pred = np.array([[0, 1, 1], [1, 0, 2]])
    cm = confusion_matrix(y_true, y_pred, num_classes=4)
    assert cm.tolist() == [[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]]
    iou = iou_per_class(cm)
    np.testing.assert_allclose(iou[:3], [1 / 3, 2 / 3, 0])
    assert np.isnan(iou[3])  # absent from truth and prediction
    assert mean_iou(cm) == pytest.approx(1 / 3)  # class 3 left out of the mean
    assert pixel_accuracy(cm) == pytest.approx(3 / 5)
    assert frequency_weighted_iou(cm) == pytest.approx((2 * 1 / 3 + 2 * 2 / 3 + 1 * 0) / 5)


def per_class_loop(y_true, y_pred, num_classes):
    """A straightforward implementation: IoU of each class from boolean masks."""
    valid = y_true != VOID
    t, p = y_true[valid], y_pred[valid]
    ious = {}
    for c in range(num_classes):
        union = np.sum((t == c) | (p == c))
        if union:
            ious[c] = np.sum((t == c) & (p == c)) / union
    return ious, np.mean(t == p)


def test_against_per_class_loop_on_random_labels():
    num_classes = 6
    y_true = random_labels((4, 37, 23), num_classes, absent=(5,))
    y_pred = rng.choice(5, size=y_true.shape)  # class 5 absent from both
    cm = sum(confusion_matrix(t, p, num_classes) for t, p in zip(y_true, y_pred))  # accumulated per image
    ious, accuracy = per_class_loop(y_true, y_pred, num_classes)

    assert cm.sum() == np.sum(y_true != VOID)
    assert sorted(ious) == [0, 1, 2, 3, 4]
    np.testing.assert_allclose(iou_per_class(cm)[:5], [ious[c] for c in range(5)])
    assert np.isnan(iou_per_class(cm)[5])
    assert mean_iou(cm) == pytest.approx(np.mean(list(ious.values())))
    assert pixel_accuracy(cm) == pytest.approx(accuracy)


def test_frequency_weighted_iou_is_sklearns_weighted_jaccard():
    """sklearn's jaccard_score(average="weighted"): per-label |T&P| / |T|P| weighted by true support."""
    y_true = random_labels((50, 40), 5, void_share=0.1)
    y_pred = rng.choice(5, size=y_true.shape)
    y_pred[y_pred == 4] = 3  # a class with support but never predicted
    valid = y_true != VOID
    t, p = y_true[valid], y_pred[valid]
    labels = np.union1d(t, p)
    jaccard = np.array([np.sum((t == c) & (p == c)) / np.sum((t == c) | (p == c)) for c in labels])
    support = np.array([np.sum(t == c) for c in labels])
    expected = np.sum(jaccard * support) / support.sum()

    assert frequency_weighted_iou(confusion_matrix(y_true, y_pred, 5)) == pytest.approx(expected)


def test_confusion_matrix_rejects_unknown_ids_and_empty_scores_are_nan():
    with pytest.raises(ValueError, match="outside"):
        confusion_matrix([0, 1], [0, 7], num_classes=3)
    with pytest.raises(ValueError, match="differ in size"):
        confusion_matrix([0, 1], [0], num_classes=3)
    empty = confusion_matrix([VOID, VOID], [0, 1], num_classes=3)
    assert empty.sum() == 0
    assert np.isnan(mean_iou(empty)) and np.isnan(pixel_accuracy(empty)) and np.isnan(frequency_weighted_iou(empty))


# ---------------------------------------------------------------- Keras metric


def one_hot_with_void(labels, num_classes):
    """One-hot targets whose void pixels are all-zero."""
    return np.eye(num_classes, dtype="float32")[np.where(labels == VOID, 0, labels)] * (labels != VOID)[..., None]


@pytest.mark.parametrize("target", ["sparse", "sparse_channel"])
def test_segmentation_mean_iou_agrees_with_mean_iou(target):
    num_classes = 5
    labels = random_labels((3, 11, 13), num_classes, absent=(4,))
    logits = rng.normal(size=(3, 11, 13, num_classes)).astype("float32")
    logits[..., 4] -= 100  # class 4 never predicted either: must be left out of both means
    y_true = {"sparse": labels, "sparse_channel": labels[..., None]}[target]

    metric = mean_iou_metric(num_classes)
    metric.update_state(y_true[:2], logits[:2])  # accumulates over batches
    metric.update_state(y_true[2:], logits[2:])
    expected = mean_iou(confusion_matrix(labels, logits.argmax(-1), num_classes))
    assert float(metric.result()) == pytest.approx(expected, abs=1e-5)


# ---------------------------------------------------------------- losses


def log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def pixel_weights(labels, class_weights):
    """The per-pixel weights make_dataset(..., class_weights=...) yields for these masks."""
    ds = tf.data.Dataset.from_tensors((tf.zeros((*labels.shape, 3)), tf.constant(labels, tf.int32)))
    return next(iter(weigh_pixels(ds, list(class_weights))))[2].numpy()


@pytest.fixture
def batch():
    labels = random_labels((2, 6, 7), 4, void_share=0.3)
    logits = rng.normal(size=(2, 6, 7, 4)).astype("float32")
    return labels, logits


def test_cross_entropy_equals_hand_computation_on_valid_pixels(batch):
    labels, logits = batch
    valid = labels != VOID
    nll = -np.take_along_axis(log_softmax(logits), np.where(valid, labels, 0)[..., None], -1)[..., 0]
    loss = make_loss("sparse_ce")
    assert float(loss(labels, logits)) == pytest.approx(nll[valid].mean(), rel=1e-5)

    weights = np.array([1.0, 3.0, 0.5, 2.0])
    w = weights[labels[valid]]
    weighted = float(loss(labels, logits, sample_weight=pixel_weights(labels, weights)))
    assert weighted == pytest.approx(np.sum(w * nll[valid]) / np.sum(w), rel=1e-5)
    assert weighted != pytest.approx(nll[valid].mean(), rel=1e-3)
    # Only the relative weights matter: scaling them all leaves the loss unchanged.
    scaled = float(loss(labels, logits, sample_weight=pixel_weights(labels, 10 * weights)))
    assert scaled == pytest.approx(weighted, rel=1e-5)


def test_binary_cross_entropy_equals_hand_computation_on_one_hot_targets(batch):
    labels, logits = batch
    valid = labels != VOID
    targets = one_hot_with_void(labels, 4)
    probabilities = 1 / (1 + np.exp(-logits.astype(np.float64)))
    bce = -(targets * np.log(probabilities) + (1 - targets) * np.log(1 - probabilities)).mean(-1)
    expected = bce[valid].mean()
    assert float(make_loss("bce")(labels, logits)) == pytest.approx(expected, rel=1e-5)  # sparse labels
    assert float(make_loss("bce")(labels[..., None], logits)) == pytest.approx(expected, rel=1e-5)


def loss_value(name: str, class_weights):
    """The loss `name` of (labels, logits) as a float, with `class_weights` as per-pixel weights."""
    loss = make_loss(name)

    def value(labels, logits):
        weights = None if class_weights is None else pixel_weights(labels, class_weights)
        return float(loss(labels, logits, sample_weight=weights))

    return value


def assert_void_logits_change_nothing(value, labels, logits):
    changed = logits.copy()
    changed[labels == VOID] = rng.normal(scale=50, size=(np.sum(labels == VOID), 4))
    assert value(labels, changed) == pytest.approx(value(labels, logits), rel=1e-6)


@pytest.mark.parametrize("loss, class_weights", [("sparse_ce", None), ("sparse_ce", [1, 2, 3, 4]), ("bce", None)])
def test_losses_ignore_void(batch, loss, class_weights):
    labels, logits = batch
    value = loss_value(loss, class_weights)
    assert_void_logits_change_nothing(value, labels, logits)

    all_void = value(np.full_like(labels, VOID), logits)
    assert np.isfinite(all_void) and abs(all_void) < 1e-6


RARE_FOREGROUND_LOSSES = ("dice", "dice_ce", "focal")


@pytest.mark.parametrize("loss", RARE_FOREGROUND_LOSSES)
@pytest.mark.parametrize("class_weights", [None, [1, 2, 3, 4]])
def test_rare_foreground_losses_ignore_void(batch, loss, class_weights):
    """A void pixel changes nothing: neither its logits nor a band of void pixels added to the batch."""
    labels, logits = batch
    value = loss_value(loss, class_weights)
    assert_void_logits_change_nothing(value, labels, logits)
    padded = np.pad(labels, ((0, 0), (0, 3), (0, 2)), constant_values=VOID)
    padded_logits = rng.normal(scale=50, size=(*padded.shape, 4)).astype("float32")
    padded_logits[:, :6, :7] = logits
    assert value(padded, padded_logits) == pytest.approx(value(labels, logits), rel=1e-5)
    assert np.isfinite(value(np.full_like(labels, VOID), logits))


@pytest.fixture(scope="module")
def camvid_batch(camvid_root):
    """Real CamVid masks at 45x60 with their square-rooted median-frequency pixel weights, and random logits."""
    from fcnseg.datasets.pipeline import make_dataset

    ds = make_dataset(camvid_root, "val", dataset="camvid", image_size=(45, 60), batch_size=4, class_weights="sqrt_median")
    _, masks, weights = (t.numpy() for t in next(iter(ds)))
    return masks, weights, rng.normal(scale=3, size=(*masks.shape, 11)).astype("float32")


@pytest.mark.parametrize("loss", RARE_FOREGROUND_LOSSES)
def test_rare_foreground_losses_are_finite_and_still_on_void_on_a_real_batch(camvid_batch, loss):
    masks, weights, logits = camvid_batch
    assert (masks == VOID).any()
    logits = tf.Variable(logits)
    with tf.GradientTape() as tape:
        value = make_loss(loss)(masks, logits, sample_weight=weights)
    gradient = tape.gradient(value, logits).numpy()
    assert np.isfinite(float(value)) and float(value) > 0 and np.isfinite(gradient).all()
    assert (gradient[masks == VOID] == 0).all() and np.abs(gradient[masks != VOID]).max() > 0


def test_median_frequency_weights():
    np.testing.assert_allclose(median_frequency_weights([10, 30, 60]), [3.0, 1.0, 0.5])
    # A class with no pixels gets weight 0 and does not enter the median.
    np.testing.assert_allclose(median_frequency_weights([0, 10, 30, 60]), [0.0, 3.0, 1.0, 0.5])
    assert median_frequency_weights([25, 25, 25, 25]).tolist() == [1.0] * 4
    np.testing.assert_allclose(median_frequency_weights([0, 10, 40, 160], power=0.5), [0.0, 2.0, 1.0, 0.5])
