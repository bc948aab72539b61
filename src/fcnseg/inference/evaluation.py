"""Score a model on a dataset split at each image's original resolution.

>>> from fcnseg.inference.evaluation import evaluate
>>> scores = evaluate(model, split="test", dataset="camvid")   # doctest: +SKIP
>>> scores["mean_iou"], scores["iou_per_class"]["Road"]         # doctest: +SKIP

From a shell, score a saved model (and write every score as JSON):

    fcnseg-evaluate runs/camvid_fcn8s/best.keras --dataset camvid --split test --flip --out scores.json
    fcnseg-evaluate runs/camvid_fcn8s/best.keras --dataset camvid --split val --scales 1 1.25 --flip
"""

from __future__ import annotations

import numpy as np

from fcnseg.datasets import default_root, get_spec, load_sample, read_split
from fcnseg.inference.int8 import inference_model
from fcnseg.metrics import confusion_matrix, summarize
from fcnseg.options import Options
from fcnseg.inference.predict import DEFAULTS, predict_masks


def evaluate(
    model,
    root=None,
    split: str | None = None,
    *,
    dataset=Options.dataset,
    input_size=DEFAULTS.input_size,
    scales=DEFAULTS.scales,
    flip: bool = DEFAULTS.flip,
    batch_size: int = DEFAULTS.batch_size,
    max_images: int | None = Options.max_images,
    precision=None,
    calibration=None,
) -> dict:
    """Predict every image of a split and score it against its untouched mask.

    `split` defaults to the dataset's evaluation split (VOC: val, CamVid: test).
    Predictions are made at the image's own size (or at ``input_size`` with
    logits resized back), so the score is at the original resolution with void
    ignored. Test-time augmentation (see `fcnseg.inference.predict.predict_logits`):
    ``scales=(1.0, 1.25)`` averages the logits of the image run at each scale,
    ``flip=True`` those of the mirrored image too. Returns
    ``mean_iou``, ``frequency_weighted_iou``, ``pixel_accuracy``,
    ``iou_per_class`` (name -> IoU or None), the confusion matrix, and how many
    images were scored. ``precision="int8"`` scores the model's int8 programs calibrated on
    `calibration` (see `fcnseg.inference.int8`; CamVid at its one frame size needs one program).

    >>> evaluate(load_fcn("camvid-fcn8s"), dataset="camvid", precision="int8")["mean_iou"]  # doctest: +SKIP
    """
    model = inference_model(model, precision, calibration)
    spec = get_spec(dataset)
    batch_size = Options(max_images=max_images, eval_batch_size=batch_size).eval_batch_size
    split = split or spec.eval_split
    samples = read_split(default_root(spec) if root is None else root, split, spec)
    samples = samples[:max_images] if max_images else samples
    cm = np.zeros((spec.num_classes, spec.num_classes), np.int64)
    for start in range(0, len(samples), batch_size):
        pairs = [load_sample(s, spec) for s in samples[start : start + batch_size]]
        predictions = predict_masks(model, [image for image, _ in pairs], input_size=input_size, scales=scales,
                                    flip=flip, batch_size=batch_size)  # fmt: skip
        for (_, mask), prediction in zip(pairs, predictions):
            cm += confusion_matrix(mask, prediction, spec.num_classes)
    return {**summarize(cm, spec.classes), "num_images": len(samples), "split": split, "dataset": spec.name}
