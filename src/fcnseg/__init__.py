"""fcnseg: fully convolutional networks for semantic segmentation in Keras 3.

Datasets (PASCAL VOC 2007, CamVid, your own folders), tf.data pipelines,
FCN-32s/16s/8s on a VGG16 encoder, training, evaluation and prediction at each
image's own resolution, export, and mask-overlay plots, importable from any
notebook once the package is installed (``pip install -e .`` in the checkout):

>>> from fcnseg import build_fcn, predict_mask, overlay, SAMPLE_ROOT
>>> model = build_fcn("fcn8s", num_classes=21, backbone_weights=None)
>>> mask = predict_mask(model, SAMPLE_ROOT / "JPEGImages" / "001763.jpg")
>>> mask.shape
(375, 500)

Submodules hold the rest: `fcnseg.datasets`, `fcnseg.pipeline`, `fcnseg.fcn`,
`fcnseg.losses`, `fcnseg.metrics`, `fcnseg.train`, `fcnseg.evaluate`,
`fcnseg.predict`, `fcnseg.segment`, `fcnseg.export`, `fcnseg.viz`, `fcnseg.download`,
`fcnseg.config` (the notebook's parameters).
"""

from importlib.metadata import PackageNotFoundError, version

from fcnseg import _quiet_tf  # noqa: F401  (first: TensorFlow without its start-up noise)
from fcnseg.datasets import (
    SAMPLE_ROOT,
    DatasetSpec,
    folder_dataset,
    get_spec,
    load_image,
    load_mask,
    read_split,
)
from fcnseg.evaluate import evaluate
from fcnseg.export import export_model
from fcnseg.fcn import build_fcn, count_flops, load_fcn, load_fcn_weights
from fcnseg.metrics import (
    SegmentationMeanIoU,
    confusion_matrix,
    frequency_weighted_iou,
    iou_per_class,
    mean_iou,
    pixel_accuracy,
)
from fcnseg.pipeline import make_dataset
from fcnseg.pretrained import PRETRAINED, pretrained_info
from fcnseg.predict import predict_logits, predict_mask, predict_masks
from fcnseg.segment import segment_files
from fcnseg.train import set_precision, train
from fcnseg.viz import (
    class_mask_overlay,
    colorize,
    overlay,
    plot_confusion_matrix,
    plot_history,
    plot_iou_per_class,
    save_figure,
    show_predictions,
)

try:
    __version__ = version("fcnseg")
except PackageNotFoundError:  # imported from a source tree that was not installed
    __version__ = "0+unknown"

__all__ = [
    "PRETRAINED",
    "SAMPLE_ROOT",
    "DatasetSpec",
    "SegmentationMeanIoU",
    "__version__",
    "build_fcn",
    "class_mask_overlay",
    "colorize",
    "confusion_matrix",
    "count_flops",
    "evaluate",
    "export_model",
    "folder_dataset",
    "frequency_weighted_iou",
    "get_spec",
    "iou_per_class",
    "load_fcn",
    "load_fcn_weights",
    "load_image",
    "load_mask",
    "make_dataset",
    "mean_iou",
    "overlay",
    "pixel_accuracy",
    "plot_confusion_matrix",
    "plot_history",
    "plot_iou_per_class",
    "predict_logits",
    "predict_mask",
    "predict_masks",
    "pretrained_info",
    "read_split",
    "save_figure",
    "segment_files",
    "set_precision",
    "show_predictions",
    "train",
]
