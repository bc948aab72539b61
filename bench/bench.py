#!/usr/bin/env python
"""Speed and memory figures of the FCN models, their training step and the input pipeline.

Prints one JSON object per line to stdout, one per figure (progress and
TensorFlow's logs go to stderr), so ``python bench/bench.py > results/bench.jsonl``
keeps a clean record. See bench/README.md for what every figure means.

Each model configuration (model x size) runs in a fresh subprocess (this script
re-invoked with ``--one <config json>``), because the peak resident memory
(``ru_maxrss``) is a process-wide high-water mark. The machine-wide figures
(environment, dense matmul GFLOP/s, tf.data pipeline) run in one more subprocess
(with ``--tiny``, a smoke test, in the model's: its memory figure includes theirs).

    python bench/bench.py                       # the full default run (CPU: ~8-10 min on 2 cores)
    python bench/bench.py --tiny                # smoke test: one model at 64x64, 2 steps
    python bench/bench.py --precision mixed_bfloat16 --models fcn8s --sizes 375x500
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

MODELS = ("fcn32s-bilinear", "fcn32s-notebook", "fcn8s")
SIZES = ((256, 256), (375, 500))  # (height, width); 375x500 is VOC's usual native size
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
COMPUTE_DTYPE = {"float32": "float32", "mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}
FLOPS_CONVENTION = "train = 3 x forward"

# Defaults of the full run and of --tiny; an option given explicitly wins over both.
FULL = dict(models=list(MODELS), sizes=[list(s) for s in SIZES], steps=2, warmup=1,
            pipeline_batches=25, matmul_n=2048)
TINY = dict(models=["fcn32s-bilinear"], sizes=[[64, 64]], steps=2, warmup=1,
            pipeline_batches=3, matmul_n=512)


# --------------------------------------------------------------------------- helpers


def emit(record: dict) -> None:
    """One figure: a JSON line on stdout, flushed at once (the parent streams it)."""
    print(json.dumps(record), flush=True)


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def peak_rss_mib() -> float:
    """This process's peak resident memory so far (Linux reports ru_maxrss in KiB, macOS in bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def parse_size(text: str) -> list[int]:
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be HxW (e.g. 375x500), got {text!r}") from None
    if min(height, width) < 1:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return [height, width]


def parse_model(name: str) -> tuple[str, str]:
    """``"fcn32s-notebook"`` -> ("fcn32s", "notebook"); a bare variant uses the bilinear decoder."""
    variant, _, decoder = name.partition("-")
    if variant not in ("fcn32s", "fcn16s", "fcn8s") or decoder not in ("", "bilinear", "notebook"):
        raise argparse.ArgumentTypeError(
            f"unknown model {name!r}: use fcn32s-bilinear, fcn32s-notebook, fcn16s or fcn8s")
    if decoder == "notebook" and variant != "fcn32s":
        raise argparse.ArgumentTypeError("the notebook decoder exists for fcn32s only")
    return variant, decoder or "bilinear"


def infer_steps(cfg: dict, batch: int) -> int:
    """Timed inference batches: --infer-steps, else 2 x --steps at batch 1 and --steps at batch >= 2."""
    return cfg["infer_steps"] or max(cfg["steps"], (2 * cfg["steps"]) // batch)


def time_steps(fn, warmup: int, steps: int) -> tuple[list[float], list[float]]:
    """Call ``fn`` ``warmup`` times untimed, then ``steps`` times; returns (warm-up, step) seconds.

    ``fn`` must wait for its result (train_on_batch and predict_on_batch return
    NumPy values, so they do), or the times would only cover the dispatch.
    """
    warm, times = [], []
    for _ in range(warmup):
        start = time.perf_counter()
        fn()
        warm.append(time.perf_counter() - start)
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return warm, times


def step_stats(times: list[float]) -> dict:
    ordered = sorted(times)
    return {
        "steps": len(times),
        "seconds": round(sum(times), 4),
        "step_s_min": round(ordered[0], 4),
        "step_s_median": round(ordered[len(ordered) // 2] if len(ordered) % 2 else
                               (ordered[len(ordered) // 2 - 1] + ordered[len(ordered) // 2]) / 2, 4),
    }


def common_fields(cfg: dict, **extra) -> dict:
    return {"precision": cfg["precision"], "jit": cfg["jit"], **extra}


# --------------------------------------------------------------------------- machine job


def matmul_gflops(n: int, dtype: str, min_seconds: float = 1.0) -> dict:
    """Dense (n x n) @ (n x n) GFLOP/s with keras.ops.matmul (2 n^3 FLOPs per product), after warm-up."""
    import numpy as np
    from keras import ops

    rng = np.random.default_rng(0)
    a = ops.convert_to_tensor(rng.standard_normal((n, n), dtype=np.float32), dtype)
    b = ops.convert_to_tensor(rng.standard_normal((n, n), dtype=np.float32), dtype)

    def once():
        # Fetching one element waits for the product (on a GPU too); cast: NumPy has no bfloat16.
        return ops.convert_to_numpy(ops.cast(ops.matmul(a, b)[0, 0], "float32"))

    for _ in range(2):
        once()
    start = time.perf_counter()
    once()
    single = time.perf_counter() - start
    reps = int(min(max(math.ceil(min_seconds / max(single, 1e-6)), 3), 2000))
    start = time.perf_counter()
    for _ in range(reps):
        c = ops.matmul(a, b)
    ops.convert_to_numpy(ops.cast(c[0, 0], "float32"))  # products on one stream run in order: waits for all
    seconds = time.perf_counter() - start
    return {"n": n, "dtype": dtype, "reps": reps, "seconds": round(seconds, 4),
            "value": round(2 * n**3 * reps / seconds / 1e9, 2)}


def pipeline_source(batch: int, tmp: Path) -> tuple[dict, str]:
    """make_dataset arguments over real CamVid frames (CAMVID_ROOT), else the VOC sample repeated."""
    camvid = os.environ.get("CAMVID_ROOT")
    if camvid and Path(camvid, "train").is_dir():
        return {"root": camvid, "split": "train", "dataset": "camvid"}, "camvid/train"
    # One VOC image (375x500) listed many times in a VOC-layout folder of symlinks:
    # the same decode/resize/augment work per example, no data to download.
    from fcnseg.datasets import SAMPLE_ROOT

    ids = [p.stem for p in sorted((SAMPLE_ROOT / "JPEGImages").glob("*.jpg"))]
    repeats = max(64, 4 * batch) // len(ids) + 1
    (tmp / "ImageSets" / "Segmentation").mkdir(parents=True)
    (tmp / "ImageSets" / "Segmentation" / "train.txt").write_text("\n".join(ids * repeats) + "\n")
    for folder in ("JPEGImages", "SegmentationClass"):
        os.symlink(SAMPLE_ROOT / folder, tmp / folder, target_is_directory=True)
    return {"root": str(tmp), "split": "train", "dataset": "voc2007"}, f"voc2007 sample x{repeats}"


def pipeline_rate(source: dict, size, batch: int, cache: bool, batches: int) -> dict:
    """Images/s of make_dataset(augment=True) alone, in steady state.

    Warm-up: with the cache on, one whole epoch (which fills the cache; only
    later epochs read from it); with it off, two batches.
    """
    from fcnseg.datasets.pipeline import make_dataset

    ds = make_dataset(source["root"], source["split"], dataset=source["dataset"], image_size=tuple(size),
                      batch_size=batch, augment=True, cache=cache, seed=0)
    epoch = int(ds.cardinality())
    if epoch < 1:
        raise ValueError(f"the pipeline gives no full batch of {batch}: too few examples")
    iterator = iter(ds.repeat())
    warmup = epoch if cache else 2
    start = time.perf_counter()
    for _ in range(warmup):
        next(iterator)
    warm_seconds = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(batches):
        images, _masks = next(iterator)
    seconds = time.perf_counter() - start
    assert tuple(images.shape) == (batch, *size, 3), images.shape
    return {"value": round(batches * batch / seconds, 2), "batches": batches, "seconds": round(seconds, 4),
            "warmup_batches": warmup, "warmup_seconds": round(warm_seconds, 3), "epoch_batches": epoch}


def machine_job(cfg: dict) -> None:
    import keras
    import numpy as np
    import tensorflow as tf

    flags = cpu_flags()
    gpus = tf.config.list_physical_devices("GPU")
    emit({
        "figure": "environment",
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_flags": {f: f in flags for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16")},
        "amx": "amx_tile" in flags,
        "gpu_present": bool(gpus),
        "gpus": [tf.config.experimental.get_device_details(g).get("device_name", g.name) for g in gpus],
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "onednn_opts": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default"),
        "mem_total_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "loadavg_1m_at_start": cfg["loadavg_1m"],
        "precision": cfg["precision"],
        "jit": cfg["jit"],
    })

    dtypes = ["float32"] + ([COMPUTE_DTYPE[cfg["precision"]]] if cfg["precision"] != "float32" else [])
    for dtype in dtypes:
        log(f"matmul {cfg['matmul_n']}^2 {dtype}")
        emit({"figure": "matmul_gflop_per_s", **matmul_gflops(cfg["matmul_n"], dtype), "unit": "GFLOP/s"})

    with tempfile.TemporaryDirectory(prefix="bench_voc_") as tmp:
        source, label = pipeline_source(cfg["batch"], Path(tmp))
        for size in cfg["sizes"]:
            for cache in (False, True):
                log(f"pipeline {label} {size[0]}x{size[1]} cache={cache}")
                result = pipeline_rate(source, size, cfg["batch"], cache, cfg["pipeline_batches"])
                emit({"figure": "pipeline_images_per_s", "source": label, "size": size, "batch": cfg["batch"],
                      "cache": cache, "augment": True, **result, "unit": "img/s"})


# --------------------------------------------------------------------------- model job


def model_job(cfg: dict) -> None:
    import keras
    import numpy as np

    from fcnseg.models.fcn import build_fcn, count_flops
    from fcnseg.metrics import mean_iou_metric
    from fcnseg.models.precision import set_precision
    from fcnseg.training.loop import make_loss, make_optimizer

    keras.utils.set_random_seed(cfg["seed"])
    set_precision(cfg["precision"])
    variant, decoder = parse_model(cfg["model"])
    height, width = cfg["size"]
    num_classes = cfg["num_classes"]
    ident = {"variant": variant, "decoder": decoder, "size": [height, width]}
    baseline = peak_rss_mib()  # Python + TensorFlow + Keras imported, no model yet

    model = build_fcn(variant, decoder=decoder, num_classes=num_classes, backbone_weights=None)
    forward_flops = count_flops(model, (height, width))
    emit({"figure": "forward_gflop_per_image", **ident, "batch": 1, **common_fields(cfg),
          "value": round(forward_flops / 1e9, 3), "unit": "GFLOP/img",
          "note": "2 x multiply-adds of all (transposed) convolutions, at the size padded to a multiple of 32"})

    # The project's training step (fcnseg.training.loop.train): Adam, void-aware CE, mean IoU metric.
    model.compile(optimizer=make_optimizer(1e-4, schedule="constant"), loss=make_loss("sparse_ce"),
                  metrics=[mean_iou_metric(num_classes)], jit_compile=cfg["jit"])
    rng = np.random.default_rng(cfg["seed"])

    def images(batch):
        return rng.uniform(0, 255, (batch, height, width, 3)).astype("float32")

    # Inference, smallest batch first: the high-water mark after each phase is that phase's peak
    # as long as each phase needs more memory than the ones before (training needs the most).
    for batch in cfg["infer_batches"]:
        x = images(batch)
        steps = infer_steps(cfg, batch)
        log(f"{cfg['model']} {height}x{width} inference batch {batch}: {cfg['warmup']} warm-up + {steps} steps")
        warm, times = time_steps(lambda: model.predict_on_batch(x), cfg["warmup"], steps)
        rate = batch * len(times) / sum(times)
        emit({"figure": "infer_images_per_s", **ident, "batch": batch, **common_fields(cfg),
              "jit_effective": bool(model.jit_compile), "value": round(rate, 3), "unit": "img/s",
              **step_stats(times), "warmup_steps": len(warm), "warmup_s": [round(t, 3) for t in warm],
              "achieved_gflop_per_s": round(forward_flops * rate / 1e9, 2),
              "peak_rss_mib_so_far": peak_rss_mib()})

    batch = cfg["batch"]
    x = images(batch)
    y = rng.integers(0, num_classes, (batch, height, width)).astype("int32")
    y[rng.random(y.shape) < 0.05] = 255  # some void pixels, as in real masks
    log(f"{cfg['model']} {height}x{width} training batch {batch}: {cfg['warmup']} warm-up + {cfg['steps']} steps")
    warm, times = time_steps(lambda: model.train_on_batch(x, y), cfg["warmup"], cfg["steps"])
    rate = batch * len(times) / sum(times)
    peak = peak_rss_mib()
    train = {**ident, "batch": batch, **common_fields(cfg)}
    emit({"figure": "train_images_per_s", **train, "jit_effective": bool(model.jit_compile),
          "value": round(rate, 3), "unit": "img/s", **step_stats(times), "warmup_steps": len(warm),
          "warmup_s": [round(t, 3) for t in warm], "data": "one synthetic batch, repeated",
          "backbone_weights": None, "num_classes": num_classes})
    emit({"figure": "train_peak_rss", **train, "value": peak, "unit": "MiB",
          "baseline_rss_mib": baseline, "measure": "ru_maxrss of a fresh process (TF imported, model built, "
          "inference run before training)"})
    emit({"figure": "train_achieved_gflop_per_s", **train, "value": round(3 * forward_flops * rate / 1e9, 2),
          "unit": "GFLOP/s", "flops_convention": FLOPS_CONVENTION,
          "train_gflop_per_image": round(3 * forward_flops / 1e9, 3)})


# --------------------------------------------------------------------------- parent


def run_child(cfg: dict, records: list[dict]) -> int:
    """Run one job in a fresh interpreter; forward its figure lines, keep them in ``records``."""
    command = [sys.executable, str(Path(__file__).resolve()), "--one", json.dumps(cfg)]
    started = time.perf_counter()
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT) as proc:
        for line in proc.stdout:
            if line.startswith('{"figure"'):
                records.append(json.loads(line))
                print(line, end="", flush=True)
            else:
                sys.stderr.write(line)
    seconds = time.perf_counter() - started
    log(f"job {cfg['job']} {cfg.get('model', '')} {cfg.get('size', '')} finished in {seconds:.0f} s"
        f" (exit {proc.returncode})")
    if proc.returncode != 0:
        emit({"figure": "error", "job": cfg["job"], "model": cfg.get("model"), "size": cfg.get("size"),
              "returncode": proc.returncode, "note": "see stderr; -9 is usually the kernel's OOM killer"})
    return proc.returncode


def derived_figures(cfg: dict, records: list[dict]) -> None:
    """Ratios that need figures from different processes."""
    compute = COMPUTE_DTYPE[cfg["precision"]]
    matmul = {r["dtype"]: r for r in records if r["figure"] == "matmul_gflop_per_s"}
    pipeline = [r for r in records if r["figure"] == "pipeline_images_per_s"]
    for train in (r for r in records if r["figure"] == "train_images_per_s"):
        ident = {k: train[k] for k in ("variant", "decoder", "size", "batch", "precision", "jit")}
        achieved = next((r for r in records if r["figure"] == "train_achieved_gflop_per_s"
                         and all(r[k] == v for k, v in ident.items())), None)
        if achieved and compute in matmul:
            emit({"figure": "train_vs_matmul_ratio", **ident,
                  "value": round(achieved["value"] / matmul[compute]["value"], 4), "unit": "ratio",
                  "train_gflop_per_s": achieved["value"], "matmul_gflop_per_s": matmul[compute]["value"],
                  "matmul": f"{matmul[compute]['n']}^2 {compute}", "flops_convention": FLOPS_CONVENTION})
        for pipe in (p for p in pipeline if p["size"] == train["size"]):
            emit({"figure": "pipeline_to_train_ratio", **ident, "cache": pipe["cache"],
                  "value": round(pipe["value"] / train["value"], 3), "unit": "ratio",
                  "pipeline_images_per_s": pipe["value"], "train_images_per_s": train["value"],
                  "note": "> 1: the pipeline alone outruns training (both measured alone, not sharing the CPU)"})


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=None, metavar="MODEL",
                   help=f"default: {' '.join(MODELS)} (fcn16s also accepted)")
    p.add_argument("--sizes", nargs="+", type=parse_size, default=None, metavar="HxW",
                   help="default: 256x256 375x500")
    p.add_argument("--precision", default="float32", choices=PRECISIONS, help="Keras dtype policy (default float32)")
    p.add_argument("--jit", action="store_true", help="XLA-compile the train and predict steps (default off)")
    p.add_argument("--steps", type=int, default=None, help=f"timed training steps (default {FULL['steps']})")
    p.add_argument("--warmup", type=int, default=None, help=f"untimed steps first (default {FULL['warmup']})")
    p.add_argument("--batch", type=int, default=8, help="training and pipeline batch size (default 8)")
    p.add_argument("--infer-batches", type=int, nargs="+", default=[1, 8], metavar="B",
                   help="inference batch sizes (default 1 8)")
    p.add_argument("--infer-steps", type=int, default=None,
                   help="timed inference batches (default: 2 x --steps at batch 1, --steps otherwise)")
    p.add_argument("--pipeline-batches", type=int, default=None,
                   help=f"timed pipeline batches (default {FULL['pipeline_batches']})")
    p.add_argument("--matmul-n", type=int, default=None, help=f"matmul size (default {FULL['matmul_n']})")
    p.add_argument("--num-classes", type=int, default=21, help="output classes (default 21, VOC; CamVid has 11)")
    p.add_argument("--skip-machine", action="store_true", help="skip the environment/matmul/pipeline job")
    p.add_argument("--seed", type=int, default=0, help="weights and synthetic batch (default 0)")
    p.add_argument("--tiny", action="store_true", help="smoke test: fcn32s-bilinear at 64x64, 2 steps, 3 pipeline batches, 512^2 matmul")
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: run one job (JSON config)
    args = p.parse_args(argv)
    defaults = TINY if args.tiny else FULL
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    for model in args.models:
        try:
            parse_model(model)
        except argparse.ArgumentTypeError as e:
            p.error(str(e))
    if min(args.steps, args.batch, *args.infer_batches) < 1 or args.warmup < 0:
        p.error("--steps, --batch and --infer-batches must be >= 1, --warmup >= 0")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.one:
        cfg = json.loads(args.one)
        for job in cfg["job"].split("+"):
            {"machine": machine_job, "model": model_job}[job](cfg)
        return 0

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    cpus = os.cpu_count() or 1
    if load is not None and load > 0.25 * cpus:
        log(f"WARNING: load average {load:.2f} on {cpus} CPUs: other processes are running and "
            "the timings will be distorted.")
    cfg = {k: getattr(args, k) for k in ("precision", "jit", "steps", "warmup", "batch", "infer_batches",
                                         "infer_steps", "pipeline_batches", "matmul_n", "num_classes",
                                         "seed", "sizes")}
    cfg["loadavg_1m"] = None if load is None else round(load, 2)
    started = time.perf_counter()
    records: list[dict] = []
    failed = 0
    jobs = [{"job": "model", "model": model, "size": size} for size in args.sizes for model in args.models]
    if args.tiny and not args.skip_machine:  # a smoke test: one process (one TensorFlow start) runs both jobs
        jobs[0]["job"] = "machine+model"
    elif not args.skip_machine:
        jobs.insert(0, {"job": "machine"})
    for job in jobs:
        failed += run_child({**cfg, **job}, records) != 0
    derived_figures(cfg, records)
    log(f"all done in {time.perf_counter() - started:.0f} s, {failed} job(s) failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
