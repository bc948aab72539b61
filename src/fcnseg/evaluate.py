"""Score a model on a dataset split at each image's original resolution.

>>> from fcnseg.evaluate import evaluate
>>> scores = evaluate(model, split="test", dataset="camvid")   # doctest: +SKIP
>>> scores["mean_iou"], scores["iou_per_class"]["Road"]         # doctest: +SKIP

From a shell, score a saved model (and write every score as JSON):

    fcnseg-evaluate runs/camvid_fcn8s/best.keras --dataset camvid --split test --flip --out scores.json
    fcnseg-evaluate runs/camvid_fcn8s/best.keras --dataset camvid --split val --scales 1 1.25 --flip
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from fcnseg.datasets import DATASETS, default_root, get_spec, load_sample, read_split
from fcnseg.metrics import confusion_matrix, summarize
from fcnseg.predict import predict_masks


def evaluate(
    model,
    root=None,
    split: str = "val",
    *,
    dataset="voc2007",
    input_size=None,
    scales=(1.0,),
    flip: bool = False,
    batch_size: int = 4,
    max_images: int | None = None,
) -> dict:
    """Predict every image of a split and score it against its untouched mask.

    Predictions are made at the image's own size (or at ``input_size`` with
    logits resized back), so the score is at the original resolution with void
    ignored. Test-time augmentation (see `fcnseg.predict.predict_logits`):
    ``scales=(1.0, 1.25)`` averages the logits of the image run at each scale,
    ``flip=True`` those of the mirrored image too. Returns
    ``mean_iou``, ``frequency_weighted_iou``, ``pixel_accuracy``,
    ``iou_per_class`` (name -> IoU or None), the confusion matrix, and how many
    images were scored.
    """
    spec = get_spec(dataset)
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


def main(argv=None) -> int:
    """Command line: ``fcnseg-evaluate MODEL.keras [--dataset D] [--split S] [--scales ...] [--flip]``."""
    run(argv)
    return 0


def run(argv=None) -> dict:
    """Score a saved model from command-line arguments; returns the scores (and writes them with ``--out``)."""
    from fcnseg.fcn import load_fcn
    from fcnseg.files import portable_path, write_json

    p = argparse.ArgumentParser(prog="fcnseg-evaluate", description=__doc__.split("\n")[0])
    p.add_argument("model", help="a saved model (.keras), e.g. a run's best.keras")
    p.add_argument("--dataset", default="voc2007", choices=tuple(DATASETS))
    p.add_argument("--root", default=None, help="dataset folder (default: VOC_ROOT / CAMVID_ROOT / data/)")
    p.add_argument("--split", default="val")
    p.add_argument("--input-size", type=int, nargs=2, default=None, metavar=("H", "W"),
                   help="predict at this size, logits resized back (default: each image's own size)")
    p.add_argument("--scales", type=float, nargs="+", default=[1.0], metavar="S",
                   help="test-time multi-scale averaging: input scale factors, e.g. 1 1.25 (default: 1)")
    p.add_argument("--flip", action="store_true", help="test-time flip averaging")
    p.add_argument("--out", default=None, help="write the scores, confusion matrix included, to this JSON file")
    args = p.parse_args(argv)
    scores = evaluate(load_fcn(args.model), args.root, args.split, dataset=args.dataset,
                      input_size=args.input_size, scales=args.scales, flip=args.flip)  # fmt: skip
    scores = {"model": portable_path(args.model), "root": portable_path(args.root), "scales": args.scales, "flip": args.flip, "input_size": args.input_size,
              **scores}  # fmt: skip
    if args.out:
        write_json(args.out, scores)
    print(json.dumps({k: scores[k] for k in ("mean_iou", "frequency_weighted_iou", "pixel_accuracy")}))
    return scores


if __name__ == "__main__":
    sys.exit(main())
