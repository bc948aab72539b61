"""Segment image and video files with a trained model: per image, a class-index mask, a
colour mask and an overlay, each at the image's own size; per video, an overlay video
(and on request the colour masks and class ids, see `fcnseg.inference.video`).

From a notebook:

>>> from fcnseg import load_fcn, segment_files
>>> report = segment_files(load_fcn("runs/camvid_fcn8s/best.keras"), ["photos/"], "segmented",
...                        dataset="camvid", scales=(1.0, 1.25), flip=True)   # doctest: +SKIP
>>> report["failed"]                                                           # doctest: +SKIP
{}

From a shell (folders, files and quoted glob patterns alike):

    fcnseg-predict runs/camvid_fcn8s/best.keras photos/ "more/*.jpg" drive.mp4 --out segmented --dataset camvid

For ``photos/street.jpg`` it writes ``segmented/masks/street.png`` (8-bit class
ids: use it as an annotation or to score), ``segmented/colored/street.png``
and ``segmented/overlays/street.png``, in the orientation its EXIF tag gives (as
viewers show a phone's photo); for ``drive.mp4``, ``segmented/overlays/drive.mp4``.
Files that cannot be read are reported by name and skipped; outputs that exist
are kept unless ``overwrite=True``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import keras
import numpy as np
from PIL import Image

from fcnseg.datasets import spec_for_classes
from fcnseg.files import atomic_path
from fcnseg.inference.inputs import VIDEO_SUFFIXES, find_inputs, prepare_image
from fcnseg.inference.int8 import ConversionError, inference_model
from fcnseg.options import PredictOptions
from fcnseg.inference.predict import DEFAULTS, predict_mask
from fcnseg.inference.video import segment_video, video_targets
from fcnseg.figures.viz import colorize, overlay

OUTPUTS = ("masks", "colored", "overlays")


def segment_files(
    model,
    inputs,
    out_dir,
    *,
    dataset=None,
    input_size=DEFAULTS.input_size,
    scales=DEFAULTS.scales,
    flip: bool = DEFAULTS.flip,
    max_pixels: int = DEFAULTS.max_pixels,
    oversize: str = DEFAULTS.oversize,
    alpha: float = DEFAULTS.alpha,
    video_outputs=("overlays",),
    mask_format: str = "png",
    batch_size: int = DEFAULTS.batch_size,
    overwrite: bool = False,
    progress: bool = True,
    precision=None,
    calibration=None,
) -> dict:
    """Segment every image and video in `inputs`: write each image's mask, colour mask and
    overlay, and each video's `video_outputs`, under `out_dir`.

    Args:
        model: a Keras FCN (e.g. ``load_fcn("best.keras", precision="auto")``).
        inputs: image and video files, folders (searched recursively) or glob patterns.
        out_dir: gets ``masks/``, ``colored/`` and ``overlays/``, one PNG per image named by
            its stem (and the videos' outputs, see `segment_video`).
        dataset: ``"voc2007"``, ``"camvid"`` or a `DatasetSpec`, for the colours; default:
            the built-in dataset with the model's number of classes, else a VOC-style palette.
        input_size, scales, flip: as in `predict_mask` (test-time augmentation).
        max_pixels, oversize: as in `predict_mask`: a photo over the pixel budget (by default 4
            megapixels, e.g. a 12-megapixel phone photo) is downscaled to it or tiled.
        alpha: the overlay's opacity.
        video_outputs, mask_format, batch_size: for videos, as `segment_video`'s
            ``outputs``, ``mask_format`` and ``batch_size``.
        overwrite: replace outputs that exist (default: keep them; an input whose
            outputs all exist is not run through the model).
        progress: show a progress bar (and one per video, of its frames).
        precision, calibration: ``precision="int8"`` runs the model as int8 programs calibrated
            on `calibration`, one per image size, built once (see `fcnseg.inference.predict.predict_logits`).

    Returns:
        ``{"written": [paths], "kept": [paths], "failed": {input: reason}}``.
    """
    model = inference_model(model, precision, calibration)
    spec = spec_for_classes(model.output_shape[-1], dataset)
    settings = PredictOptions(input_size=input_size, scales=scales, flip=flip, batch_size=batch_size,
                              max_pixels=max_pixels, oversize=oversize, alpha=alpha)  # fmt: skip
    video_targets(out_dir, "", video_outputs, mask_format)  # checks them before any work
    video_options = dict(outputs=video_outputs, mask_format=mask_format, overwrite=overwrite, progress=progress)

    def segment_one(path: Path) -> dict:
        if path.suffix.lower() in VIDEO_SUFFIXES:
            return segment_video(model, path, out_dir, dataset=spec, **video_options, **_video_keywords(settings))
        return _segment_image(model, path, Path(out_dir), spec, settings, overwrite)

    return _each_input(find_inputs(inputs), segment_one, progress)


def _each_input(paths: list[Path], segment_one, progress: bool) -> dict:
    """`segment_one` of each path: its outputs gathered, an unreadable input reported and skipped."""
    report = {"written": [], "kept": [], "failed": {}}
    owner: dict[str, Path] = {}
    bar = keras.utils.Progbar(len(paths), unit_name="file") if progress and paths else None
    for i, path in enumerate(paths, 1):
        try:
            if path.stem in owner:
                raise ValueError(f"its outputs would replace those of {owner[path.stem]} (same file name)")
            owner[path.stem] = path
            done = segment_one(path)
            report["written"] += done["written"]
            report["kept"] += done["kept"]
        except ConversionError:  # the model's fault: every file would fail alike
            raise
        except (OSError, ValueError) as e:
            report["failed"][str(path)] = str(e)
            print(f"\nerror: {path}: {e} (skipped)", file=sys.stderr)
        if bar:
            bar.update(i)
    return report


def _video_keywords(settings: PredictOptions) -> dict:
    """`settings`' options that `segment_video` takes (the precision is already in the model)."""
    return settings.keywords(("input_size", "scales", "flip", "batch_size", "max_pixels", "oversize", "alpha"))


def _segment_image(model, path: Path, out_dir: Path, spec, settings: PredictOptions, overwrite: bool) -> dict:
    targets = {kind: out_dir / kind / f"{path.stem}.png" for kind in OUTPUTS}
    todo = {kind: target for kind, target in targets.items() if overwrite or not target.exists()}
    report = {"written": list(todo.values()), "kept": [t for kind, t in targets.items() if kind not in todo]}
    if not todo:
        return report
    if not path.is_file():
        raise FileNotFoundError(f"No such image file: {path}")
    image = prepare_image(path)  # RGB uint8, turned as its EXIF tag says; ValueError naming an unreadable file
    mask = predict_mask(model, image, **settings.keywords(("input_size", "scales", "flip", "max_pixels", "oversize")))
    pictures = {
        "masks": mask,
        "colored": colorize(mask, spec.colormap),
        "overlays": overlay(image, mask, alpha=settings.alpha, colormap=spec.colormap),
    }
    for kind, target in todo.items():
        with atomic_path(target) as tmp:
            Image.fromarray(np.ascontiguousarray(pictures[kind])).save(tmp, format="PNG")
    return report

