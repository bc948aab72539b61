"""Segment videos: frames streamed from OpenCV's reader, predicted in batches and written as
videos at the input's size and frame rate. Memory holds one batch of frames, however long the video.

>>> from fcnseg import load_fcn, segment_video
>>> model = load_fcn("runs/camvid_fcn8s/best.keras", precision="auto")              # doctest: +SKIP
>>> segment_video(model, "drive.mp4", "segmented", outputs=("overlays", "masks"))   # doctest: +SKIP
{'written': [PosixPath('segmented/overlays/drive.mp4'), PosixPath('segmented/masks/drive')], 'kept': [], 'frames': 250}

For ``drive.mp4`` it writes ``segmented/overlays/drive.mp4``, on request
``segmented/colored/drive.mp4`` (the colour masks) and the class ids: a folder
``segmented/masks/drive/`` of 8-bit PNGs ``000000.png``, ``000001.png``, ... or,
with ``mask_format="mkv"``, one lossless video ``segmented/masks/drive.mkv``
(FFV1; each decoded frame's first channel holds the class ids). Every output is
written under a temporary name and renamed when complete, so a run that fails
or is interrupted leaves nothing half-written under these names.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from pathlib import Path
from typing import NamedTuple

import cv2
import keras

from fcnseg.checks import MASK_FORMATS, VIDEO_OUTPUTS, one_of
from fcnseg.datasets import spec_for_classes
from fcnseg.files import atomic_dir, atomic_path
from fcnseg.inference.int8 import inference_model
from fcnseg.options import PredictOptions
from fcnseg.inference.predict import DEFAULTS, predict_masks
from fcnseg.figures.viz import colorize, overlay

# Each output's file-name ending and OpenCV FourCC, by kind (and the masks' by format); "png" is a
# folder of PNG frames. MPEG-4 Part 2 plays nearly everywhere and OpenCV's FFmpeg writes it; FFV1 is lossless.
FORMATS = {"overlays": (".mp4", "mp4v"), "colored": (".mp4", "mp4v"), "png": ("", "png"), "mkv": (".mkv", "FFV1")}
DEFAULT_FPS = 25.0  # for a video whose frame rate OpenCV cannot tell


class VideoInfo(NamedTuple):
    """A video's frame rate, frame size (height, width) and frame count (the container's
    figure, which can be off; None when it has none)."""

    fps: float
    size: tuple[int, int]
    frame_count: int | None


@contextlib.contextmanager
def open_video(path):
    """Yield ``(info, frames)``: the video's `VideoInfo` and an iterator over its frames as RGB
    uint8 (H, W, 3), decoded one at a time. A file OpenCV cannot open, or one without frames,
    raises `ValueError` naming it.

    >>> with open_video("drive.mp4") as (info, frames):   # doctest: +SKIP
    ...     first = next(frames)
    >>> info.fps, info.size, first.shape                   # doctest: +SKIP
    (30.0, (360, 480), (360, 480, 3))
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No such video file: {path}")
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise ValueError(f"Cannot open video {path}: the file is corrupt or not a video OpenCV reads.")
        ok, first = capture.read()
        if not ok:
            raise ValueError(f"Video {path} has no frames.")
        fps, count = capture.get(cv2.CAP_PROP_FPS), int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        info = VideoInfo(fps if fps > 0 else DEFAULT_FPS, first.shape[:2], count if count > 0 else None)
        yield info, _frames(capture, first)
    finally:
        capture.release()


def _frames(capture, frame):
    ok = True
    while ok:
        yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        ok, frame = capture.read()


def segment_frames(model, frames, *, batch_size: int = DEFAULTS.batch_size, input_size=DEFAULTS.input_size,
                   scales=DEFAULTS.scales, flip: bool = DEFAULTS.flip, max_pixels: int = DEFAULTS.max_pixels,
                   oversize: str = DEFAULTS.oversize):  # fmt: skip
    """``(frame, mask)`` for each frame of an iterable, predicted `batch_size` frames at a time
    (`predict_masks`, with its test-time options and pixel budget): only one batch is held at a time.

    >>> for frame, mask in segment_frames(model, frames, batch_size=4, flip=True):   # doctest: +SKIP
    ...     picture = overlay(frame, mask, colormap=spec.colormap)
    """
    batch_size = PredictOptions(batch_size=batch_size).batch_size
    frames = iter(frames)
    while batch := list(itertools.islice(frames, batch_size)):
        masks = predict_masks(model, batch, input_size=input_size, scales=scales, flip=flip, batch_size=batch_size,
                              max_pixels=max_pixels, oversize=oversize)  # fmt: skip
        yield from zip(batch, masks)


def video_targets(out_dir, path, outputs=("overlays",), mask_format: str = "png") -> dict:
    """Where `segment_video` writes each of `outputs` for the video `path`, by kind.

    >>> video_targets("out", "clips/drive.avi", ("overlays", "masks"))
    {'overlays': PosixPath('out/overlays/drive.mp4'), 'masks': PosixPath('out/masks/drive')}
    """
    out_dir, stem = Path(out_dir), Path(path).stem
    return {kind: out_dir / kind / (stem + _format(kind, mask_format)[0]) for kind in outputs}


def _format(kind: str, mask_format: str) -> tuple[str, str]:
    """The file-name ending and FourCC of output `kind` (see `FORMATS`)."""
    one_of("video output", kind, VIDEO_OUTPUTS)
    return FORMATS[one_of("mask_format", mask_format, MASK_FORMATS) if kind == "masks" else kind]


def segment_video(model, path, out_dir, *, outputs=("overlays",), mask_format: str = "png", dataset=None,
                  input_size=DEFAULTS.input_size, scales=DEFAULTS.scales, flip: bool = DEFAULTS.flip,
                  max_pixels: int = DEFAULTS.max_pixels, oversize: str = DEFAULTS.oversize,
                  alpha: float = DEFAULTS.alpha, batch_size: int = DEFAULTS.batch_size, overwrite: bool = False,
                  progress: bool = True, precision=None, calibration=None) -> dict:  # fmt: skip
    """Segment every frame of the video at `path` and write the overlay video (and, on request,
    the colour masks and class ids) under `out_dir`, at the video's size and frame rate.

    Args:
        model: a Keras FCN (e.g. ``load_fcn("best.keras", precision="auto")``).
        path: a video file OpenCV reads (mp4, avi, mkv, mov, ...).
        out_dir: gets ``overlays/<stem>.mp4``, ``colored/<stem>.mp4`` and ``masks/<stem>/``
            (or ``masks/<stem>.mkv``), see `video_targets`.
        outputs: any of ``"overlays"``, ``"colored"``, ``"masks"``.
        mask_format: ``"png"`` (a folder of PNG frames) or ``"mkv"`` (one lossless FFV1 video).
        dataset: the colours, as in `segment_files`.
        input_size, scales, flip, max_pixels, oversize, alpha, batch_size: how frames are
            predicted (`predict_masks`, `batch_size` frames a call) and drawn (`alpha`: the
            overlay's opacity), as `fcnseg.options.PredictOptions` says.
        overwrite: replace outputs that exist (default: keep them; a video whose outputs
            all exist is not read).
        progress: a progress bar with frames done, frames per second and time left.
        precision, calibration: ``precision="int8"`` runs the model as an int8 program for the
            video's frame size, calibrated on `calibration`, built once (`fcnseg.inference.int8`).

    Returns:
        ``{"written": [paths], "kept": [paths], "frames": number of frames segmented}``.

    >>> segment_video(model, "drive.mp4", "out", outputs=("overlays", "colored"), batch_size=4)  # doctest: +SKIP
    >>> segment_video(model, "drive.mp4", "out", precision="int8")                               # doctest: +SKIP
    """
    model = inference_model(model, precision, calibration)
    spec = spec_for_classes(model.output_shape[-1], dataset)
    settings = PredictOptions(input_size=input_size, scales=scales, flip=flip, batch_size=batch_size,
                              max_pixels=max_pixels, oversize=oversize, alpha=alpha)  # fmt: skip
    targets = video_targets(out_dir, path, outputs, mask_format)
    todo = {kind: target for kind, target in targets.items() if overwrite or not target.exists()}
    report = {"written": [], "kept": [t for kind, t in targets.items() if kind not in todo], "frames": 0}
    if not todo:
        return report
    draw = _drawings(spec, settings.alpha)
    with open_video(path) as (info, frames), contextlib.ExitStack() as stack:
        writers = {kind: frame_writer(stack, target, info, codec=_format(kind, mask_format)[1], color=kind != "masks")
                   for kind, target in todo.items()}  # fmt: skip
        masks = segment_frames(model, frames, **settings.keywords(("batch_size", "input_size", "scales", "flip",
                                                                "max_pixels", "oversize")))  # fmt: skip
        for frame, mask in _counted(masks, info.frame_count, report, progress):
            for kind, write in writers.items():
                write(draw[kind](frame, mask))
    report["written"] = list(todo.values())
    return report


def _drawings(spec, alpha: float) -> dict:
    """What each output kind writes for a frame and its mask."""
    return {
        "overlays": lambda frame, mask: overlay(frame, mask, alpha=alpha, colormap=spec.colormap),
        "colored": lambda frame, mask: colorize(mask, spec.colormap),
        "masks": lambda frame, mask: mask,
    }


def _counted(pairs, frame_count, report: dict, progress: bool):
    """`pairs` passed on, counted in ``report["frames"]``, with a progress bar of frames per second.
    The frame count is the container's estimate: the bar ends with the last frame read."""
    bar = keras.utils.Progbar(frame_count, unit_name="frame", stateful_metrics=["fps"]) if progress else None
    started = time.perf_counter()
    for pair in pairs:
        yield pair
        report["frames"] += 1
        if bar:
            bar.update(report["frames"], [("fps", report["frames"] / (time.perf_counter() - started))], finalize=False)
    if bar:
        bar.update(report["frames"], finalize=True)


def frame_writer(stack: contextlib.ExitStack, target: Path, info: VideoInfo, *, codec: str = "mp4v",
                 color: bool = True):  # fmt: skip
    """A function that appends one picture (RGB, or with ``color=False`` class ids) to `target`: a
    video in OpenCV's FourCC `codec`, or with ``codec="png"`` a folder of numbered PNGs. `target`
    appears, complete, when `stack` closes without an error; until then the frames go to a
    temporary name beside it.

    >>> with contextlib.ExitStack() as stack:                                          # doctest: +SKIP
    ...     write = frame_writer(stack, Path("overlays.mp4"), VideoInfo(30.0, (360, 480), None))
    ...     for picture in pictures:
    ...         write(picture)
    """
    if codec == "png":
        folder = stack.enter_context(atomic_dir(target))
        folder.mkdir()
        numbers = itertools.count()
        return lambda picture: _write_png(folder / f"{next(numbers):06d}.png", picture)
    tmp = stack.enter_context(atomic_path(target))
    height, width = info.size
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*codec), info.fps, (width, height),
                             isColor=color)  # fmt: skip
    stack.callback(writer.release)  # before the rename: closes the file
    if not writer.isOpened():
        raise OSError(f"OpenCV cannot write {target}: its FFmpeg has no {codec!r} encoder")
    return lambda picture: writer.write(cv2.cvtColor(picture, cv2.COLOR_RGB2BGR) if color else picture)


def _write_png(path: Path, picture) -> None:
    if not cv2.imwrite(str(path), picture):
        raise OSError(f"Cannot write {path}")
