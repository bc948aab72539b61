#!/usr/bin/env python
"""Size, latency and agreement with Keras of each export format (docs/export.md).

Builds a random-weight FCN-8s at full size (21 classes, fc_units=4096; seeded),
exports it to every format, and runs each file in its own runtime in a fresh
process that does not import fcnseg (tests/export_check.py), on CamVid test
frames (480x360; random frames when CAMVID_ROOT is unset). Prints one JSON
line per format to stdout:

- ``size_mib``: the file (SavedModel: the folder);
- ``latency_ms``: the runtime's median time for one frame (batch 1), over
  ``--repeat`` runs after a warm-up, median over the frames; loading and I/O excluded;
- ``class_agreement``: fraction of pixels whose class equals `predict_mask`'s;
- ``max_logit_diff``: largest absolute logit difference from `predict_logits`.

The ``keras`` line times ``model.predict_on_batch`` in this process, for comparison.

    CAMVID_ROOT=/path/to/camvid python bench/export_bench.py > results/export_bench_cpu.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CHECKER = ROOT / "tests" / "export_check.py"
FRAME = (360, 480)
# (name, export format, quantize, file suffix)
EXPORTS = (
    ("tf_saved_model", "tf_saved_model", None, ""),
    ("onnx", "onnx", None, ".onnx"),
    ("litert", "litert", None, ".tflite"),
    ("litert_float16", "litert", "float16", ".tflite"),
    ("litert_dynamic_range", "litert", "dynamic_range", ".tflite"),
)


def frames(count: int) -> dict:
    """CamVid test frames (the first `count`), else seeded random uint8 frames of the same size."""
    from fcnseg import load_image

    root = os.environ.get("CAMVID_ROOT")
    if root and (Path(root) / "test").is_dir():
        return {p.stem: load_image(p) for p in sorted((Path(root) / "test").glob("*.png"))[:count]}
    rng = np.random.default_rng(0)
    return {f"random{i}": rng.integers(0, 256, (*FRAME, 3), np.uint8) for i in range(count)}


def size_mib(path: Path) -> float:
    files = [path] if path.is_file() else [f for f in path.rglob("*") if f.is_file()]
    return sum(f.stat().st_size for f in files) / 2**20


def keras_latency_ms(model, images: dict, repeat: int) -> float:
    """Median ms of ``predict_on_batch`` for one frame (float32 input, as `predict_logits` feeds it)."""
    per_image = []
    for image in images.values():
        x = image[None].astype("float32")
        model.predict_on_batch(x)
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            model.predict_on_batch(x)
            times.append(time.perf_counter() - start)
        per_image.append(statistics.median(times))
    return 1000 * statistics.median(per_image)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=3, help="frames (default 3)")
    p.add_argument("--repeat", type=int, default=5, help="timed runs per frame (default 5)")
    p.add_argument("--formats", nargs="+", default=[e[0] for e in EXPORTS], choices=[e[0] for e in EXPORTS])
    args = p.parse_args(argv)

    import keras

    from fcnseg import build_fcn, export_model, predict_logits, predict_mask

    keras.utils.set_random_seed(0)
    model = build_fcn("fcn8s", num_classes=21, backbone_weights=None)
    images = frames(args.images)
    references = {k: (predict_logits(model, v[None])[0], predict_mask(model, v)) for k, v in images.items()}
    print(json.dumps({"format": "keras", "latency_ms": keras_latency_ms(model, images, args.repeat),
                      "frames": list(images), "repeat": args.repeat}), flush=True)  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        np.savez(work / "inputs.npz", **images)
        for name, fmt, quantize, suffix in (e for e in EXPORTS if e[0] in args.formats):
            path = work / f"fcn8s_{name}{suffix}"
            start = time.perf_counter()
            export_model(model, path, format=fmt, quantize=quantize, input_size=FRAME if fmt == "litert" else None)
            export_s = time.perf_counter() - start
            out = work / name
            out.mkdir()
            env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
            command = [sys.executable, str(CHECKER), fmt, str(work / "inputs.npz"), str(out), str(path),
                       "--repeat", str(args.repeat)]  # fmt: skip
            result = json.loads(subprocess.run(command, env=env, cwd=work, check=True, capture_output=True,
                                               text=True, timeout=1800).stdout)  # fmt: skip
            outputs = np.load(out / "0.npz")
            agreement = np.mean([(outputs[f"classes_{k}"] == mask).mean() for k, (_, mask) in references.items()])
            diff = max(float(np.abs(outputs[f"logits_{k}"] - logits).max()) for k, (logits, _) in references.items())
            print(json.dumps({"format": name, "size_mib": round(size_mib(path), 1),
                              "latency_ms": 1000 * statistics.median(result["seconds_per_image"]),
                              "class_agreement": float(agreement), "max_logit_diff": diff,
                              "max_abs_logit": float(max(np.abs(l).max() for l, _ in references.values())),
                              "export_s": round(export_s, 1)}), flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
