"""fcnseg: fully convolutional networks for semantic segmentation in Keras 3.

Datasets (PASCAL VOC 2007, CamVid, your own folders), tf.data pipelines,
FCN-32s/16s/8s on a VGG16 encoder, named training recipes, training,
evaluation and prediction at each image's own resolution, overlay videos,
export, and mask-overlay plots, importable from any notebook once the package is installed
(``pip install -e .`` in the checkout):

>>> from fcnseg import build_fcn, predict_mask, overlay, SAMPLE_ROOT
>>> model = build_fcn("fcn8s", num_classes=21, backbone_weights=None)
>>> mask = predict_mask(model, SAMPLE_ROOT / "JPEGImages" / "001763.jpg")
>>> mask.shape
(375, 500)

``import fcnseg`` itself imports nothing heavy and changes nothing in the
process: each name below loads its submodule (and TensorFlow, where needed)
when first used. Call `quiet_tensorflow` first to hide TensorFlow's start-up
lines in a notebook.

The folders follow the path an image takes: `fcnseg.datasets` (the datasets, their
``tf.data`` pipeline and downloads), `fcnseg.models` (FCN, its encoders, dtype policies, the
shipped models), `fcnseg.training` (the training loop, losses, ``tf.distribute``, a run's
record), `fcnseg.inference` (prediction at the input's own resolution, files, videos, int8,
scoring) and `fcnseg.figures` (overlays and plots). Beside them: `fcnseg.options` (every
option, declared once), `fcnseg.recipes`, `fcnseg.runner` (one run from a recipe to its
scores, for the notebook and ``fcnseg-train``), `fcnseg.metrics`, `fcnseg.export`,
`fcnseg.cli` (the command lines) and the shared `fcnseg.checks`, `fcnseg.files`, `fcnseg.quiet`.
"""

import importlib
from importlib.metadata import PackageNotFoundError, version

# Public name -> the submodule that defines it.
_HOMES = {
    "datasets": ("SAMPLE_ROOT", "DatasetSpec", "check_dataset", "describe_dataset", "folder_dataset", "get_spec",
                 "load_image", "load_mask", "read_split"),
    "datasets.pipeline": ("make_dataset",),
    "models.fcn": ("build_fcn", "count_flops", "load_fcn", "load_fcn_weights", "save_fcn"),
    "models.precision": ("set_precision",),
    "training.loop": ("train",),
    "metrics": ("confusion_matrix", "frequency_weighted_iou", "iou_per_class", "mean_iou",
                "mean_iou_metric", "pixel_accuracy"),
    "inference.predict": ("predict_logits", "predict_mask", "predict_masks"),
    "inference.int8": ("int8_model",),
    "inference.segment": ("segment_files",),
    "inference.video": ("segment_video",),
    "inference.evaluation": ("evaluate",),
    "figures.viz": ("class_mask_overlay", "colorize", "overlay", "save_figure", "show_predictions"),
    "figures.plots": ("plot_confusion_matrix", "plot_history", "plot_iou_per_class"),
    "export": ("export_model",),
    "options": ("Options", "PredictOptions"),
    "recipes": ("RECIPES", "recipe"),
    "runner": ("RunPlan", "plan_run", "run"),
    "quiet": ("quiet_tensorflow",),
}  # fmt: skip
_MODULE_OF = {name: module for module, names in _HOMES.items() for name in names}

try:
    __version__ = version("fcnseg")
except PackageNotFoundError:  # imported from a source tree that was not installed
    __version__ = "0+unknown"

__all__ = sorted(["__version__", *_MODULE_OF])


def __getattr__(name):
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'fcnseg' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"fcnseg.{_MODULE_OF[name]}"), name)
    globals()[name] = value  # loaded once
    return value


def __dir__():
    return sorted({*globals(), *__all__})

