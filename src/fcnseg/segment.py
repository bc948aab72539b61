"""Segment image files with a trained model: per image, a class-index mask, a
colour mask and an overlay, each at the image's own size.

From a notebook:

>>> from fcnseg import load_fcn, segment_files
>>> report = segment_files(load_fcn("runs/camvid_fcn8s/best.keras"), ["photos/"], "segmented",
...                        dataset="camvid", scales=(1.0, 1.25), flip=True)   # doctest: +SKIP
>>> report["failed"]                                                           # doctest: +SKIP
{}

From a shell (folders, files and quoted glob patterns alike):

    fcnseg-predict runs/camvid_fcn8s/best.keras photos/ "more/*.jpg" --out segmented --dataset camvid

For ``photos/street.jpg`` it writes ``segmented/masks/street.png`` (8-bit class
ids: use it as an annotation or to score), ``segmented/colored/street.png``
and ``segmented/overlays/street.png``. Files that cannot be read are reported
by name and skipped; outputs that exist are kept unless ``overwrite=True``.
"""

from __future__ import annotations

import glob
import sys
from pathlib import Path

import keras
import numpy as np
from PIL import Image

from fcnseg.checks import check_scales
from fcnseg.datasets import DATASETS, IMAGE_SUFFIXES, folder_dataset, get_spec
from fcnseg.files import atomic_path
from fcnseg.options import Options
from fcnseg.predict import predict_mask, prepare_image
from fcnseg.viz import colorize, overlay

OUTPUTS = ("masks", "colored", "overlays")


def find_images(inputs) -> list[Path]:
    """Image files named by `inputs`: files as given, folders' images (sorted, recursively), glob patterns.

    A name that is none of these is returned as it is, so that the caller
    reports it as missing along with the unreadable files.
    """
    found = []
    for item in [inputs] if isinstance(inputs, (str, Path)) else inputs:
        path = Path(item).expanduser()
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        elif not path.exists() and glob.has_magic(str(item)):
            found += sorted(Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
        else:
            found.append(path)
    return list(dict.fromkeys(found))


def segment_files(
    model,
    inputs,
    out_dir,
    *,
    dataset=None,
    input_size=Options.input_size,
    scales=Options.scales,
    flip: bool = Options.flip,
    alpha: float = 0.5,
    overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """Segment every image in `inputs` and write its mask, colour mask and overlay under `out_dir`.

    Args:
        model: a Keras FCN (e.g. ``load_fcn("best.keras")``).
        inputs: image files, folders (searched recursively) or glob patterns.
        out_dir: gets ``masks/``, ``colored/`` and ``overlays/``, one PNG per image named by its stem.
        dataset: ``"voc2007"``, ``"camvid"`` or a `DatasetSpec`, for the colours; default:
            the built-in dataset with the model's number of classes, else a VOC-style palette.
        input_size, scales, flip: as in `predict_mask` (test-time augmentation).
        alpha: the overlay's opacity.
        overwrite: replace outputs that exist (default: keep them; an image whose
            outputs all exist is not run through the model).
        progress: show a progress bar.

    Returns:
        ``{"written": [paths], "kept": [paths], "failed": {input: reason}}``.
    """
    spec = _colour_spec(model.output_shape[-1], dataset)
    scales = check_scales(scales)
    out_dir = Path(out_dir)
    images = find_images(inputs)
    report = {"written": [], "kept": [], "failed": {}}
    owner: dict[str, Path] = {}
    bar = keras.utils.Progbar(len(images), unit_name="image") if progress and images else None
    for i, path in enumerate(images, 1):
        targets = {kind: out_dir / kind / f"{path.stem}.png" for kind in OUTPUTS}
        try:
            if path.stem in owner:
                raise ValueError(f"its outputs would replace those of {owner[path.stem]} (same file name)")
            owner[path.stem] = path
            todo = {k: t for k, t in targets.items() if overwrite or not t.exists()}
            report["kept"] += [t for k, t in targets.items() if k not in todo]
            if todo:
                _write(model, path, todo, spec, alpha, dict(input_size=input_size, scales=scales, flip=flip))
                report["written"] += list(todo.values())
        except (OSError, ValueError) as e:
            report["failed"][str(path)] = str(e)
            print(f"\nerror: {path}: {e} (skipped)", file=sys.stderr)
        if bar:
            bar.update(i)
    return report


def _write(model, path: Path, targets: dict, spec, alpha: float, options: dict) -> None:
    if not path.is_file():
        raise FileNotFoundError(f"No such image file: {path}")
    image = prepare_image(path)  # RGB uint8; raises ValueError naming an unreadable file
    mask = predict_mask(model, image, **options)
    pictures = {
        "masks": mask,
        "colored": colorize(mask, spec.colormap),
        "overlays": overlay(image, mask, alpha=alpha, colormap=spec.colormap),
    }
    for kind, target in targets.items():
        with atomic_path(target) as tmp:
            Image.fromarray(np.ascontiguousarray(pictures[kind])).save(tmp, format="PNG")


def _colour_spec(num_classes: int, dataset):
    if dataset is not None:
        spec = get_spec(dataset)
        if spec.num_classes != num_classes:
            raise ValueError(f"The model predicts {num_classes} classes but dataset {spec.name!r} has "
                             f"{spec.num_classes}: pass the dataset it was trained on.")  # fmt: skip
        return spec
    for spec in DATASETS.values():
        if spec.num_classes == num_classes:
            return spec
    return folder_dataset([f"class {i}" for i in range(num_classes)])
