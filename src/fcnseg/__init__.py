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

Submodules hold the rest: `fcnseg.datasets`, `fcnseg.pipeline`, `fcnseg.fcn`,
`fcnseg.losses`, `fcnseg.metrics`, `fcnseg.precision`, `fcnseg.training`, `fcnseg.evaluation`,
`fcnseg.predict`, `fcnseg.int8` (int8 inference), `fcnseg.segment`, `fcnseg.video`, `fcnseg.export`, `fcnseg.viz`,
`fcnseg.plots`, `fcnseg.download`, `fcnseg.options` (every option of a run),
`fcnseg.recipes`, `fcnseg.runner` (one run from options to scores, for the
notebook and ``fcnseg-train``), `fcnseg.record` (``metrics.json``), `fcnseg.scoreboard`
(the score table), `fcnseg.examples` (the images the notebook shows), `fcnseg.pretrained` (the shipped
models), `fcnseg.cli`
(the command lines).
"""

import importlib
from importlib.metadata import PackageNotFoundError, version

# Public name -> the submodule that defines it.
_HOMES = {
    "datasets": ("SAMPLE_ROOT", "DatasetSpec", "check_dataset", "describe_dataset", "folder_dataset", "get_spec",
                 "load_image", "load_mask", "read_split"),
    "evaluation": ("evaluate",),
    "export": ("export_model",),
    "fcn": ("build_fcn", "count_flops", "load_fcn", "load_fcn_weights", "save_fcn"),
    "int8": ("int8_model",),
    "metrics": ("confusion_matrix", "frequency_weighted_iou", "iou_per_class", "mean_iou",
                "mean_iou_metric", "pixel_accuracy"),
    "options": ("Options",),
    "pipeline": ("make_dataset",),
    "precision": ("set_precision",),
    "predict": ("predict_logits", "predict_mask", "predict_masks"),
    "quiet": ("quiet_tensorflow",),
    "recipes": ("RECIPES", "recipe"),
    "runner": ("RunPlan", "plan_run", "run"),
    "segment": ("segment_files",),
    "video": ("segment_video",),
    "training": ("train",),
    "viz": ("class_mask_overlay", "colorize", "overlay", "save_figure", "show_predictions"),
    "plots": ("plot_confusion_matrix", "plot_history", "plot_iou_per_class"),
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

