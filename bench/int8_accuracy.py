#!/usr/bin/env python
"""How much int8 costs in accuracy: a model's CamVid test scores (`fcnseg.inference.evaluation.evaluate`, every
frame at its own 480x360) in float32 and at int8 under each calibration, with the share of pixels
whose class equals float32's (docs/int8.md).

Calibrations (``--calibrations``): ``default`` (for camvid-fcn8s the bundled street photos, cut and
mirrored, `fcnseg.inference.int8.calibration_images`) and ``camvid:train`` (32 train frames evenly spaced
over the split); any value that ``calibration=`` takes works. Writes one JSON file with the
command that made it:

    CAMVID_ROOT=../shared/camvid python bench/int8_accuracy.py --model camvid-fcn8s \\
        --out results/int8_camvid-fcn8s.json
    CAMVID_ROOT=../shared/camvid python bench/int8_accuracy.py --max-images 16 --out /tmp/int8.json  # a subset

Its int8 programs are cached as in normal use (`fcnseg.inference.int8`): a second run skips the builds.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
SCORES = ("mean_iou", "frequency_weighted_iou", "pixel_accuracy", "iou_per_class", "num_images")


class Recorder:
    """A model that keeps the class map of every batch it predicts: with one pass at the images' own
    size (no ``input_size``, ``scales`` or ``flip``) these are `evaluate`'s masks, in its order."""

    def __init__(self, model):
        self.model, self.input_shape, self.output_shape = model, model.input_shape, model.output_shape
        self.masks = []

    def predict_on_batch(self, x):
        logits = np.asarray(self.model.predict_on_batch(x))
        self.masks.extend(logits.argmax(-1).astype(np.uint8))
        return logits


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="camvid-fcn8s", help="a .keras file or a shipped model's name")
    p.add_argument("--calibrations", nargs="+", default=["default", "camvid:train"],
                   help="int8 calibrations to score: default, or what calibration= takes (default: both)")
    p.add_argument("--max-images", type=int, default=None, help="the first N test frames only (default: all 233)")
    p.add_argument("--out", required=True, help="JSON file to write")
    args = p.parse_args(argv)

    from fcnseg.quiet import quiet_tensorflow

    quiet_tensorflow()
    from fcnseg.datasets import default_root
    from fcnseg.inference.evaluation import evaluate
    from fcnseg.models.fcn import load_fcn
    from fcnseg.files import portable_path, write_json
    from fcnseg.inference.int8 import CALIBRATION_SAMPLES, cpu_has_int8_units, int8_model

    runs = {"float32": Recorder(load_fcn(args.model, precision="float32"))}
    for calibration in args.calibrations:
        runs[f"int8 {calibration}"] = Recorder(int8_model(load_fcn(args.model),
                                                          None if calibration == "default" else calibration))
    results = {}
    for name, model in runs.items():
        scores = evaluate(model, split="test", dataset="camvid", max_images=args.max_images)
        agreement = np.mean([(a == b).mean() for a, b in zip(runs["float32"].masks, model.masks)])
        results[name] = {**{k: scores[k] for k in SCORES}, "agreement_with_float32": float(agreement)}
        print(name, {k: round(v, 4) for k, v in results[name].items() if isinstance(v, float)}, flush=True)
    write_json(args.out, {
        "command": "python bench/int8_accuracy.py " + shlex.join(argv if argv is not None else sys.argv[1:]),
        "model": portable_path(args.model), "dataset": "camvid", "data_root": portable_path(default_root("camvid")),
        "split": "test", "calibration_samples": CALIBRATION_SAMPLES,
        "cpu_has_int8_units": cpu_has_int8_units(), "results": results,
    })  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
