"""Shared fixtures: the real data in ../shared, found through the same environment
variables a user sets (VOC_ROOT, CAMVID_ROOT, FCN_BACKBONE_WEIGHTS), and the
installed console scripts."""

import os
import shutil
import sys
import sysconfig
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")

REPO = Path(__file__).resolve().parents[1]


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


def _stale_entry_point(name: str) -> str | None:
    """Why the installed `name` does not run what pyproject.toml declares (an install older than
    the checkout), or None."""
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"].get(name)
    try:
        installed = {ep.name: ep.value for ep in metadata.distribution("fcnseg").entry_points
                     if ep.group == "console_scripts"}  # fmt: skip
    except metadata.PackageNotFoundError:
        return None
    if declared is None or installed.get(name) == declared:
        return None
    return (f"the installed {name} runs {installed.get(name)}, pyproject.toml declares {declared}: "
            "reinstall the package (pip install -e .)")


def console_script(name: str) -> str:
    """The path of an installed ``fcnseg-*`` script: the one beside this interpreter (a
    virtual environment that is not activated has its scripts there, off PATH) or in its
    scripts folder, else the one on PATH. Fails when the installed package's entry point
    is not the checkout's (the script would run other code)."""
    stale = _stale_entry_point(name)
    if stale:
        pytest.fail(stale)
    for folder in dict.fromkeys([Path(sys.executable).parent, Path(sysconfig.get_path("scripts"))]):
        for candidate in (folder / name, folder / f"{name}.exe"):
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"console script {name} is neither beside {sys.executable} nor on PATH: "
                    "install the package (pip install -e .)")
    return found


@pytest.fixture(scope="session")
def script():
    """``script("fcnseg-predict")``: the path to run, see `console_script`."""
    return console_script


@pytest.fixture(scope="session")
def small_camvid(camvid_root, tmp_path_factory) -> Path:
    """A CamVid folder of 4 train, 2 val and 2 test frames (symlinks to the real files)."""
    root = tmp_path_factory.mktemp("small_camvid")
    for split, count in (("train", 4), ("val", 2), ("test", 2)):
        for folder in (split, f"{split}annot"):
            (root / folder).mkdir(parents=True)
            for path in sorted((camvid_root / folder).glob("*.png"))[:count]:
                (root / folder / path.name).symlink_to(path)
    return root
