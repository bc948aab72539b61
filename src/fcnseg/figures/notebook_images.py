"""The images the notebook shows: the training image where a class covers the most pixels
(`find_class_example`) and the images to run inference on (`inference_images`).

>>> from fcnseg.datasets import SAMPLE_ROOT
>>> sample, class_id = find_class_example(read_split(SAMPLE_ROOT, "train"), "horse")
>>> sample.id, get_spec("voc2007").classes[class_id]
('001763', 'dog')
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fcnseg.datasets import VOID, Sample, available_splits, data_problem, get_spec, load_mask, read_split
from fcnseg.models.pretrained import street_images


def find_class_example(samples: list[Sample], class_name: str | None = None, dataset="voc2007", *,
                       max_samples: int = 200):  # fmt: skip
    """``(sample, class_id)``: the sample where `class_name` (default: the dataset's
    ``example_class``) covers the most pixels.

    Looks at the masks of the first `max_samples` samples. When there is no such class,
    or it is in none of them, the class covering the most pixels of the first sample
    is used instead (background excluded).
    """
    spec = get_spec(dataset)
    if not samples:
        raise ValueError("find_class_example needs at least one sample.")
    class_name = class_name or spec.example_class
    if class_name in spec.classes:
        class_id = spec.classes.index(class_name)
        best, best_count = None, 0
        for sample in samples[:max_samples]:
            count = int((load_mask(sample.mask_path, spec) == class_id).sum())
            if count > best_count:
                best, best_count = sample, count
        if best is not None:
            return best, class_id
    mask = load_mask(samples[0].mask_path, spec)
    counts = np.bincount(mask[mask != VOID].ravel(), minlength=spec.num_classes)
    if spec.classes[0] == "background" and counts[1:].any():
        counts[0] = 0
    return samples[0], int(counts.argmax())


def inference_images(plan, count: int = 3):
    """``(items, source)``: ``[(id, image_path), ...]`` to run inference on, and where they come from.

    The dataset's own ``inference_images`` when they are in its folder (VOC 2007: the
    reference notebook's ``000347``, ``001707``, ``001950``, trainval JPEGs without masks);
    otherwise the first `count` images of the test split (VOC, CamVid)
    or, failing that, of the evaluation split. Offline (no dataset), the bundled street photos.
    """
    if not plan.has_data:
        return [(p.stem, p) for p in street_images()], "the bundled street photos (fcnseg/sample/street)"
    root = Path(plan.data_root)
    present = [(Path(p).stem, root / p) for p in plan.spec.inference_images if (root / p).is_file()]
    if present:
        return present, "the dataset's own inference images"
    for split in dict.fromkeys(("test", plan.eval_split)):
        if split in available_splits(root, plan.spec) and data_problem(root, plan.spec, [split]) is None:
            samples = read_split(root, split, plan.spec)[:count]
            return [(s.id, s.image_path) for s in samples], f"the first {len(samples)} image(s) of split {split!r}"
    raise FileNotFoundError(f"No images to run inference on under {root}.")
