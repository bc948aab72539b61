"""Shared fixtures: the real data in ../shared, found through the same environment
variables a user sets (VOC_ROOT, CAMVID_ROOT, FCN_BACKBONE_WEIGHTS), the installed
console scripts, and the policy ``precision="auto"`` resolves to.

``FCNSEG_TEST_AUTO_PRECISION=float32`` (or ``mixed_bfloat16``) runs the suite as on a
CPU where ``auto`` picks that policy: the suite makes ``fcnseg.models.precision.auto_precision``
return it and hands it to the notebook it executes. Only the tests read this variable;
`tests/test_precision.py` still checks the real choice against /proc/cpuinfo.

    FCNSEG_TEST_AUTO_PRECISION=float32 python3 -m pytest -q tests/test_train.py
"""

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
AUTO_PRECISION_VARIABLE = "FCNSEG_TEST_AUTO_PRECISION"
AUTO_PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


def told_auto_precision() -> str | None:
    """The policy the suite was told ``auto`` resolves to (FCNSEG_TEST_AUTO_PRECISION), or None."""
    told = os.environ.get(AUTO_PRECISION_VARIABLE) or None
    if told not in (None, *AUTO_PRECISIONS):
        raise pytest.UsageError(f"{AUTO_PRECISION_VARIABLE}={told!r}: use one of {', '.join(AUTO_PRECISIONS)}")
    return told


def machine_auto_precision() -> str:
    """The policy "auto" must pick on this machine, from the machine itself: mixed_float16 with
    a GPU, mixed_bfloat16 on a CPU with bfloat16 units (AVX-512 BF16 or AMX), else float32."""
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        return "mixed_float16"
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        pytest.skip("no /proc/cpuinfo to tell whether this CPU has bfloat16 units")
    flags = {f for line in cpuinfo.read_text().splitlines() if line.startswith("flags")
             for f in line.split(":", 1)[1].split()}  # fmt: skip
    return "mixed_bfloat16" if flags & {"avx512_bf16", "amx_bf16"} else "float32"


@pytest.fixture(scope="session", autouse=True)
def _auto_precision_as_told():
    """With FCNSEG_TEST_AUTO_PRECISION set, ``set_precision("auto")`` resolves to it in this process."""
    told = told_auto_precision()
    if told is None:
        yield
        return
    import fcnseg.models.precision

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fcnseg.models.precision, "auto_precision", lambda: told)
        yield


@pytest.fixture(scope="session")
def told_precision() -> dict:
    """``{"precision": policy}`` to hand a child process (the notebook) when the suite was told
    what ``auto`` resolves to, else ``{}`` (the child resolves ``auto`` itself)."""
    told = told_auto_precision()
    return {"precision": told} if told else {}


@pytest.fixture(scope="session")
def auto_precision() -> str:
    """The policy ``precision="auto"`` resolves to in this run: the one told, else this machine's."""
    return told_auto_precision() or machine_auto_precision()


def pytest_report_header(config):
    told = told_auto_precision()
    return f"precision auto: {told} ({AUTO_PRECISION_VARIABLE})" if told else "precision auto: this machine's choice"


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
