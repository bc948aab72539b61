#!/usr/bin/env python
"""Speed of the video path (`fcnseg.inference.video.segment_video`) at 480x360 under float32, mixed_bfloat16
and int8 in one run, where its time goes, and each precision's agreement with float32 (docs/videos.md).

The clip is CamVid's test sequence Seq05VD in order (``--frames`` frames at 480x360, written
as an MPEG-4 video at 30 fps; random frames when CAMVID_ROOT is unset), or ``--video``. The
model is ``--model`` (a saved ``.keras``, e.g. the shipped CamVid model), else a seeded
random-weight FCN-8s with 11 classes. Each of ``--precisions`` (default float32,
mixed_bfloat16 and int8: Keras policies through `load_fcn(path, precision=...)`, int8 as
`fcnseg.inference.int8.int8_model` calibrated on the bundled street photos, its program built in the
untimed warm-up or read from the cache) prints one JSON line per figure to stdout:

- ``video_fps``: `segment_video` end to end (decode, predict, overlay and encode; the
  overlay video only), frames per second, after one untimed run;
- ``video_time_share``: each stage timed alone over the same frames, its share of their sum:
  ``decode`` (OpenCV's reader), ``predict`` (`predict_masks` in batches of ``--batch-size``),
  ``encode`` (the overlay drawn and written with OpenCV's writer);
- ``frame_seconds``: seconds per frame of `predict_masks` at batch 1 and ``--batch-size``,
  median over ``--repeat`` timed passes after a warm-up;
- ``precision_agreement`` (each precision but float32, when float32 is measured): the share of
  pixels whose class equals float32's, over the clip's frames.

Run it on an idle CPU (a training run beside it halves every figure):

    CAMVID_ROOT=../shared/camvid python bench/video_bench.py --model runs/camvid_fcn8s/best.keras \\
        > results/video_bench_cpu.jsonl
    python bench/video_bench.py --tiny           # smoke test: 4 frames at 96x128, a small model
    python bench/video_bench.py --model camvid-fcn8s --precisions float32 int8   # some precisions only
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
SEQUENCE = "Seq05VD"
PRECISIONS = ("float32", "mixed_bfloat16", "int8")


def emit(record: dict) -> None:
    print(json.dumps(record), flush=True)


def camvid_frames(count: int, size) -> list[np.ndarray]:
    """The first `count` frames of CamVid's test sequence, in order, at `size` (H, W); random
    frames when CAMVID_ROOT is unset."""
    import cv2

    from fcnseg import load_image

    root = os.environ.get("CAMVID_ROOT")
    paths = sorted((Path(root) / "test").glob(f"{SEQUENCE}_*.png"))[:count] if root else []
    if not paths:
        rng = np.random.default_rng(0)
        return [rng.integers(0, 256, (*size, 3), np.uint8) for _ in range(count)]
    return [cv2.resize(load_image(p), size[::-1], interpolation=cv2.INTER_AREA) for p in paths]


def write_clip(path: Path, frames, fps: float = 30.0) -> Path:
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, frames[0].shape[1::-1])
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def stage_seconds(model, clip: Path, work: Path, batch_size: int) -> dict:
    """Seconds of each stage of the video path, each timed alone over the clip's frames."""
    from fcnseg.datasets import spec_for_classes
    from fcnseg.inference.video import frame_writer, open_video
    from fcnseg.figures.viz import overlay

    start = time.perf_counter()
    with open_video(clip) as (info, frames):
        frames = list(frames)
    decode = time.perf_counter() - start
    start = time.perf_counter()
    masks = clip_masks(model, frames, batch_size)
    predict = time.perf_counter() - start
    colours = spec_for_classes(model.output_shape[-1]).colormap
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        write = frame_writer(stack, work / "encode.mp4", info)
        for frame, mask in zip(frames, masks):
            write(overlay(frame, mask, colormap=colours))
    encode = time.perf_counter() - start
    return {"decode": decode, "predict": predict, "encode": encode}


def clip_masks(model, frames, batch_size: int) -> list[np.ndarray]:
    """The frames' masks, predicted as `segment_video` predicts them."""
    from fcnseg.inference.video import segment_frames

    return [mask for _, mask in segment_frames(model, frames, batch_size=batch_size)]


def frame_seconds(model, frames, batch: int, repeat: int) -> float:
    """Median seconds per frame of `predict_masks` on `batch` frames, after one untimed pass."""
    from fcnseg.inference.predict import predict_masks

    chunk = (frames * batch)[:batch]
    predict_masks(model, chunk, batch_size=batch)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        predict_masks(model, chunk, batch_size=batch)
        times.append((time.perf_counter() - start) / batch)
    return statistics.median(times)


def runnable(model_path: Path, precision: str):
    """The model at `precision`: a Keras policy, or ``"int8"`` (its int8 programs, calibrated by default)."""
    from fcnseg.models.fcn import load_fcn
    from fcnseg.inference.int8 import int8_model

    return int8_model(load_fcn(model_path)) if precision == "int8" else load_fcn(model_path, precision=precision)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="a saved .keras model (default: a random-weight FCN-8s)")
    p.add_argument("--video", default=None, help="a video to segment (default: CamVid's Seq05VD at --size)")
    p.add_argument("--frames", type=int, default=32, help="frames of the CamVid clip (default 32)")
    p.add_argument("--size", default="360x480", help="HxW of the CamVid clip (default 360x480)")
    p.add_argument("--batch-size", type=int, default=8, help="frames per model call (default 8)")
    p.add_argument("--repeat", type=int, default=3, help="timed passes per precision and batch (default 3)")
    p.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=PRECISIONS,
                   help="precisions to measure, float32 first for the agreement (default: all three)")
    p.add_argument("--tiny", action="store_true", help="smoke test: 4 frames at 96x128, fc6/fc7 of 16 units")
    args = p.parse_args(argv)
    if args.tiny:
        args.frames, args.size, args.repeat, args.batch_size = 4, "96x128", 1, 2
    size = tuple(int(v) for v in args.size.split("x"))

    from fcnseg.quiet import quiet_tensorflow

    quiet_tensorflow()
    import keras

    from fcnseg.models.fcn import build_fcn
    from fcnseg.inference.video import open_video, segment_video

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model_path = Path(args.model) if args.model else work / "fcn8s.keras"
        if not args.model:
            keras.utils.set_random_seed(0)
            build_fcn("fcn8s", num_classes=11, backbone_weights=None, fc_units=16 if args.tiny else 4096).save(model_path)
        clip = Path(args.video) if args.video else write_clip(work / "clip.mp4", camvid_frames(args.frames, size))
        with open_video(clip) as (info, frames):
            frames = list(frames)
        common = {"model": model_path.name, "frames": len(frames), "size": list(info.size), "batch": args.batch_size}

        masks = {}
        for precision in dict.fromkeys(args.precisions):
            model = runnable(model_path, precision)
            # The untimed run traces the Keras model, or builds (or reads) the int8 program.
            segment_video(model, clip, work / "warmup", batch_size=args.batch_size, progress=False, overwrite=True)
            start = time.perf_counter()
            done = segment_video(model, clip, work / "out", batch_size=args.batch_size, progress=False, overwrite=True)
            emit({"figure": "video_fps", "value": done["frames"] / (time.perf_counter() - start), "unit": "frame/s",
                  "precision": precision, **common})  # fmt: skip
            stages = stage_seconds(model, clip, work, args.batch_size)
            total = sum(stages.values())
            emit({"figure": "video_time_share", **{k: v / total for k, v in stages.items()}, "seconds": stages,
                  "precision": precision, **common})  # fmt: skip
            for batch in dict.fromkeys((1, args.batch_size)):
                emit({"figure": "frame_seconds", "value": frame_seconds(model, frames, batch, args.repeat), "unit": "s",
                      "precision": precision, **common, "batch": batch})  # fmt: skip
            masks[precision] = clip_masks(model, frames, args.batch_size)
        for precision in [p for p in masks if p != "float32"] if "float32" in masks else []:
            agreement = np.mean([(a == b).mean() for a, b in zip(masks["float32"], masks[precision])])
            emit({"figure": "precision_agreement", "value": float(agreement), "unit": "share of pixels",
                  "between": ["float32", precision], **common})  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
