"""Run exported FCN files in their own runtime, without this project: what a server or phone would do.

    python tests/export_check.py FORMAT INPUTS.npz OUT_DIR MODEL [MODEL ...] [--repeat N]

FORMAT is tf_saved_model (``tf.saved_model.load``), onnx (``onnxruntime``) or
litert (``ai_edge_litert``'s interpreter, else ``tf.lite.Interpreter``).
INPUTS.npz holds uint8 RGB images (H, W, 3) under any names; each is run alone
(batch 1). For the i-th MODEL, OUT_DIR/i.npz gets ``logits_NAME`` and
``classes_NAME``, and stdout one JSON line with the median seconds per image
over ``--repeat`` runs after one warm-up (null without ``--repeat``) (the runtime only: no loading, no I/O).

Imports only numpy and the runtime, and checks at the end that ``fcnseg`` was
never imported, so the files are proven to stand alone. Used by
tests/test_export.py and bench/export_bench.py.
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

THREADS = os.cpu_count()


def saved_model_runner(path):
    import tensorflow as tf

    serve = tf.saved_model.load(path).signatures["serving_default"]
    return lambda images: {k: v.numpy() for k, v in serve(images=tf.constant(images)).items()}


def onnx_runner(path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return lambda images: dict(zip(names, session.run(names, {"images": images})))


def litert_runner(path):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    runner = Interpreter(model_path=path, num_threads=THREADS).get_signature_runner()
    return lambda images: runner(images=images)


RUNNERS = {"tf_saved_model": saved_model_runner, "onnx": onnx_runner, "litert": litert_runner}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("format", choices=tuple(RUNNERS))
    p.add_argument("inputs")
    p.add_argument("out_dir")
    p.add_argument("models", nargs="+")
    p.add_argument("--repeat", type=int, default=0, help="timed runs per image (default: none)")
    args = p.parse_args(argv)
    with np.load(args.inputs) as data:
        images = {name: data[name][None] for name in data.files}
    for i, model in enumerate(args.models):
        run = RUNNERS[args.format](model)
        outputs, seconds = {}, []
        for name, image in images.items():
            result = run(image)  # warm-up (and the outputs checked)
            times = []
            for _ in range(args.repeat):
                start = time.perf_counter()
                run(image)
                times.append(time.perf_counter() - start)
            seconds.append(statistics.median(times) if times else None)
            outputs[f"logits_{name}"], outputs[f"classes_{name}"] = result["logits"][0], result["classes"][0]
        np.savez(Path(args.out_dir) / f"{i}.npz", **outputs)
        print(json.dumps({"model": model, "format": args.format, "seconds_per_image": seconds}), flush=True)
    assert "fcnseg" not in sys.modules, "the exported model must run without the fcnseg package"
    return 0


if __name__ == "__main__":
    sys.exit(main())
