"""Shared fixtures: the real data in ../shared, found through the same environment
variables a user sets (VOC_ROOT, CAMVID_ROOT, FCN_BACKBONE_WEIGHTS)."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")


def _env_path(name: str, what: str) -> Path:
    value = os.environ.get(name)
    if not value or not Path(value).exists():
        pytest.skip(f"{what} not available: set {name} (CI sets it to ../shared)")
    return Path(value)


@pytest.fixture(scope="session")
def voc_root() -> Path:
    return _env_path("VOC_ROOT", "PASCAL VOC 2007 masks and split lists")


@pytest.fixture(scope="session")
def camvid_root() -> Path:
    return _env_path("CAMVID_ROOT", "CamVid")


@pytest.fixture(scope="session")
def vgg_weights() -> Path:
    return _env_path("FCN_BACKBONE_WEIGHTS", "A VGG16 no-top weight file")
