#!/usr/bin/env python
"""results/camvid/camvid_overlay.gif: a model's overlays on a CamVid test sequence, frames in order, as
an animated GIF small enough for docs/videos.md to show inline (at most ``--max-mib``, 5 MiB).

The frames are CamVid's test sequence ``--sequence`` (Seq05VD or 0001TP; CamVid's frames are
1 s of driving apart at 30 fps, so the animation plays them at ``--fps``, default 4), predicted
as `fcnseg.inference.video.segment_video` predicts a video (`segment_frames`, at ``--precision``),
overlaid with CamVid's colours, shrunk to ``--width`` pixels and labelled with ``--label``
(default: the model file's name). A file over ``--max-mib`` is not written.

    CAMVID_ROOT=../shared/camvid python bench/overlay_animation.py runs/camvid_fcn8s/best.keras
    CAMVID_ROOT=../shared/camvid python bench/overlay_animation.py runs/camvid_fcn8s/best.keras \\
        --label "FCN-8s, camvid recipe, stage 1" --sequence 0001TP --frames 24 --width 320
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent.parent / "results" / "camvid"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="a saved .keras model with CamVid's 11 classes")
    p.add_argument("--root", default=os.environ.get("CAMVID_ROOT"), help="CamVid folder (default: CAMVID_ROOT)")
    p.add_argument("--sequence", default="Seq05VD", help="the test sequence's file-name prefix (default Seq05VD)")
    p.add_argument("--start", type=int, default=0, help="first frame of the sequence (default 0)")
    p.add_argument("--frames", type=int, default=32, help="frames (default 32)")
    p.add_argument("--fps", type=float, default=4.0, help="frames per second of the animation (default 4)")
    p.add_argument("--width", type=int, default=360, help="width in pixels (default 360)")
    p.add_argument("--label", default=None, help="text drawn on every frame (default: the model file's name)")
    p.add_argument("--precision", default="auto", help="dtype policy the model runs at (default auto)")
    p.add_argument("--max-mib", type=float, default=5.0, help="refuse a larger file (default 5)")
    p.add_argument("--out", default=str(RESULTS / "camvid_overlay.gif"))
    args = p.parse_args(argv)
    if not args.root or not (Path(args.root) / "test").is_dir():
        p.error("CamVid not found: set CAMVID_ROOT or pass --root (a folder with test/)")
    paths = sorted((Path(args.root) / "test").glob(f"{args.sequence}_*.png"))[args.start : args.start + args.frames]
    if not paths:
        p.error(f"no test frames {args.sequence}_*.png in {args.root}")

    from fcnseg.quiet import quiet_tensorflow

    quiet_tensorflow()
    import cv2
    from PIL import Image

    from fcnseg.datasets import get_spec, load_image
    from fcnseg.models.fcn import load_fcn
    from fcnseg.files import atomic_path
    from fcnseg.inference.video import segment_frames
    from fcnseg.figures.viz import overlay

    model = load_fcn(args.model, precision=args.precision)
    label = args.label or Path(args.model).name
    colours = get_spec("camvid").colormap
    pictures = []
    for frame, mask in segment_frames(model, (load_image(path) for path in paths)):
        picture = overlay(frame, mask, colormap=colours)
        height = round(picture.shape[0] * args.width / picture.shape[1])
        picture = cv2.resize(picture, (args.width, height), interpolation=cv2.INTER_AREA)
        cv2.putText(picture, label, (6, height - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
        pictures.append(Image.fromarray(picture))
    out = Path(args.out)
    with atomic_path(out) as tmp:
        first, *rest = pictures
        first.save(tmp, save_all=True, append_images=rest, duration=round(1000 / args.fps), loop=0, optimize=True)
        mib = tmp.stat().st_size / 2**20
        if mib > args.max_mib:
            print(f"error: the animation would be {mib:.1f} MiB, over --max-mib {args.max_mib:g}: pass fewer "
                  "--frames or a smaller --width", file=sys.stderr)  # fmt: skip
            return 1
    print(f"{out} ({len(pictures)} frames of {args.sequence} from {paths[0].stem}, {mib:.1f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
