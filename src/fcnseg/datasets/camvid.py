"""CamVid (Brostow et al.), as SegNet distributes it: 11 classes and void (raw label 11),
``train/``, ``val/``, ``test/`` with ``trainannot/``, ``valannot/``, ``testannot/``; its
folder is ``CAMVID_ROOT`` (else ``data/camvid``), and scores are reported on ``test``.
"""

from __future__ import annotations

import numpy as np

from fcnseg.datasets.folders import FOLDERS
from fcnseg.datasets.spec import DatasetSpec

CAMVID_CLASSES = (
    "Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence",
    "Car", "Pedestrian", "Bicyclist",
)  # fmt: skip
CAMVID_COLORMAP = np.array(
    [
        (128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222),
        (128, 128, 0), (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0),
        (0, 128, 192),
    ],
    np.uint8,
)  # fmt: skip
CAMVID = DatasetSpec("camvid", CAMVID_CLASSES, CAMVID_COLORMAP, FOLDERS, 11, "{split}", "{split}annot",
                     root_env="CAMVID_ROOT", eval_split="test", example_class="Car")  # fmt: skip
