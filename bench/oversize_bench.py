#!/usr/bin/env python
"""Which way of predicting an image over the pixel budget scores better, and the memory the default takes
for a 12-megapixel photo (the numbers behind `fcnseg.options.PredictOptions.oversize`, docs/your_own_data.md).

Scores: CamVid ``--split`` frames (``--frames`` of them, evenly spread; all by default) upscaled
``--upscale`` times (bicubic; their masks with nearest neighbour), predicted by ``--model`` in float32 with
``max_pixels=--max-pixels`` (below the upscaled frames' pixels) by each `fcnseg.checks.OVERSIZE` way
(``downscale``: the frame scaled down to the budget, the logits resized back; ``tiles``: overlapping tiles
within the budget, their logits blended), and, for reference, at the frame's own size with no budget
(``own_size``) and at CamVid's size (``camvid_size``: the original frame, its mask upscaled). Memory: the
peak resident set (``ru_maxrss``) of a fresh process that loads the model and runs `segment_files` (what
``fcnseg-predict`` runs) on one ``--photo-size`` photo (a bundled street photo, upscaled) with the default
way and budget, beside that of a process that only loads the model. Writes one JSON object to ``--out``.

    CAMVID_ROOT=../shared/camvid python bench/oversize_bench.py --out results/oversize_camvid_val.json
    CAMVID_ROOT=../shared/camvid python bench/oversize_bench.py --frames 24 --out results/oversize_camvid_val24.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import cpu_model  # bench/bench.py, beside this script

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def scores(model_name: str, root: Path, split: str, frames: int | None, upscale: int, max_pixels: int):
    """After each upscaled frame, the mean IoU, pixel accuracy and seconds per frame of each way (and of the
    two references) over the frames so far, with ``frames_done``."""
    import cv2
    import numpy as np

    from fcnseg import load_fcn, load_image, load_mask, predict_mask, read_split
    from fcnseg.checks import OVERSIZE
    from fcnseg.metrics import confusion_matrix, mean_iou, pixel_accuracy

    model = load_fcn(model_name, precision="float32")
    samples = read_split(root, split, "camvid")
    if frames:
        samples = [samples[i] for i in np.linspace(0, len(samples) - 1, frames).round().astype(int)]
    ways = {way: {"max_pixels": max_pixels, "oversize": way} for way in OVERSIZE}
    ways["own_size"] = {"max_pixels": 10**12}
    cms = {way: 0 for way in (*ways, "camvid_size")}
    seconds = dict.fromkeys(cms, 0.0)
    for n, sample in enumerate(samples, 1):
        image, mask = load_image(sample.image_path), load_mask(sample.mask_path, "camvid")
        size = (image.shape[1] * upscale, image.shape[0] * upscale)  # OpenCV's (width, height)
        big, big_mask = cv2.resize(image, size, interpolation=cv2.INTER_CUBIC), cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST)
        for way, options in ways.items():
            started = time.perf_counter()
            cms[way] = cms[way] + confusion_matrix(big_mask, predict_mask(model, big, **options), 11)
            seconds[way] += time.perf_counter() - started
        started = time.perf_counter()
        small = cv2.resize(predict_mask(model, image), size, interpolation=cv2.INTER_NEAREST)
        cms["camvid_size"] = cms["camvid_size"] + confusion_matrix(big_mask, small, 11)
        seconds["camvid_size"] += time.perf_counter() - started
        print(f"{n}/{len(samples)} {sample.image_path.name}", file=sys.stderr, flush=True)
        yield {"frames_done": n, **{way: {"mean_iou": round(mean_iou(cm), 4), "pixel_accuracy": round(pixel_accuracy(cm), 4),
               "seconds_per_frame": round(seconds[way] / n, 1)} for way, cm in cms.items()}}  # fmt: skip


def peak_memory(model_name: str, photo_size, segment: bool) -> dict:
    """Run in a fresh process: load the model (and with `segment`, `segment_files` on one street photo
    upscaled to `photo_size` (H, W)); the peak resident set in MiB, the seconds and what was written."""
    import cv2

    from fcnseg import load_fcn, segment_files
    from fcnseg.models.pretrained import street_images

    model = load_fcn(model_name, precision="float32")
    report = {"written": []}
    started = time.perf_counter()
    if segment:
        with tempfile.TemporaryDirectory() as folder:
            photo = Path(folder) / "photo.jpg"
            cv2.imwrite(str(photo), cv2.resize(cv2.imread(str(street_images()[0])), photo_size[::-1],
                                               interpolation=cv2.INTER_CUBIC), [cv2.IMWRITE_JPEG_QUALITY, 92])  # fmt: skip
            report = segment_files(model, [photo], Path(folder) / "out", progress=False)
    return {"peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "seconds": round(time.perf_counter() - started, 1), "written": len(report["written"])}  # fmt: skip


def fresh(args, segment: bool) -> dict:
    """`peak_memory` in a fresh interpreter (ru_maxrss is a process's high-water mark)."""
    command = [sys.executable, __file__, "--memory-only", "--model", args.model, "--photo-size", *map(str, args.photo_size)]
    done = subprocess.run(command + (["--segment"] if segment else []), capture_output=True, text=True, check=True)
    return json.loads(done.stdout.splitlines()[-1])


def main() -> None:
    from fcnseg.options import PredictOptions

    default = PredictOptions()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="camvid-fcn8s", help="a shipped model's name or a .keras file (CamVid's classes)")
    p.add_argument("--root", default=os.environ.get("CAMVID_ROOT"), help="CamVid (default: CAMVID_ROOT)")
    p.add_argument("--split", default="val")
    p.add_argument("--frames", type=int, default=None, help="this many frames, evenly spread (default: all)")
    p.add_argument("--upscale", type=int, default=4, help="factor on CamVid's 360x480 (default: 4, 1440x1920)")
    p.add_argument("--max-pixels", type=int, default=1024 * 1024,
                   help="the budget of the scores (default: 1 megapixel, below the 2.8 of 4x frames)")
    p.add_argument("--photo-size", type=int, nargs=2, default=(3000, 4000), metavar=("H", "W"))
    p.add_argument("--skip-scores", action="store_true", help="measure the memory only")
    p.add_argument("--out", default=None, help="write the JSON here (default: stdout only)")
    p.add_argument("--memory-only", action="store_true", help=argparse.SUPPRESS)  # the fresh process of `fresh`
    p.add_argument("--segment", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.memory_only:
        print(json.dumps(peak_memory(args.model, args.photo_size, args.segment)))
        return
    if not (args.skip_scores or args.root):
        p.error("set CAMVID_ROOT or pass --root")
    record = {"command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]), "cpu": cpu_model(),
              "cores": os.cpu_count(), "model": args.model, "precision": "float32", "default": default.oversize}  # fmt: skip
    record["memory"] = {"photo_size": list(args.photo_size), "max_pixels": default.max_pixels, "oversize": default.oversize,
                        "model_only": fresh(args, False), "photo": fresh(args, True)}  # fmt: skip
    write(record, args.out)
    if not args.skip_scores:  # the record is rewritten after each frame: an interrupted run keeps what it scored
        setting = {"split": args.split, "frames": args.frames or "all", "upscale": args.upscale, "max_pixels": args.max_pixels}
        for so_far in scores(args.model, Path(args.root), args.split, args.frames, args.upscale, args.max_pixels):
            record["scores"] = {**setting, **so_far}
            write(record, args.out)
    print(json.dumps(record, indent=1))


def write(record: dict, out) -> None:
    """`record` as JSON into the file `out` (nothing without one)."""
    if out:
        Path(out).write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
