"""Exported models (SavedModel, ONNX, LiteRT) compute what the Keras model computes.

Each model of VARIANTS is exported once per format (module-scoped fixtures; FCN-8s
through the `fcnseg-export` command line, the other through `export_model`), then one
process per format that does not import fcnseg (tests/export_check.py) runs
the files on a real CamVid test frame and the VOC sample image (both at half size) at their
own sizes (LiteRT: the frame, at its fixed size). Its class maps must agree
with `predict_mask` on >= 99.9% of pixels and its logits with `predict_logits`
within LOGIT_RTOL of the largest logit. Random weights (seeded; backbone_weights=None,
fc_units=32) with zero-mean score kernels, so that the maps hold several classes.
"""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import keras
import numpy as np
import pytest

from fcnseg import SAMPLE_ROOT, build_fcn, export_model, load_image, predict_logits, predict_mask
from fcnseg.cli import main_export as main

ROOT = Path(__file__).resolve().parents[1]
CHECKER = ROOT / "tests" / "export_check.py"
TIMEOUT_S = 240
NUM_CLASSES = 11
# FCN-32s and FCN-16s with the bilinear decoder are left out: every layer kind they have
# (score_fr, score_pool4, fuse_pool4, the transposed-convolution upsamplings and their crops)
# is in FCN-8s too, so their files would prove nothing new. The notebook decoder's are not.
VARIANTS = {
    "fcn32s_notebook": dict(variant="fcn32s", decoder="notebook"),
    "fcn8s": dict(variant="fcn8s"),
}
CLI_VARIANT = "fcn8s"  # exported through `fcnseg-export` (from its .keras file), the others through export_model
LITERT_SIZE = (180, 240)  # half of CamVid's frame size, that of the frame the tests use
SUFFIXES = {"tf_saved_model": "", "onnx": ".onnx", "litert": ".tflite"}
LOGIT_RTOL = 1e-4  # float32 in every runtime: measured differences are below 1e-5 of the largest logit
MIN_AGREEMENT = 0.999


def small_fcn(name: str, seed: int) -> keras.Model:
    """A seeded random FCN whose score kernels have zero mean over their inputs.

    Random ReLU features share one dominant direction, which plain random score
    kernels turn into one class everywhere; removing the mean spreads the argmax.
    """
    keras.utils.set_random_seed(seed)
    model = build_fcn(**VARIANTS[name], num_classes=NUM_CLASSES, backbone_weights=None, fc_units=32,
                      skip_scales=(1.0, 1.0))  # fmt: skip
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if layer.name in ("score_fr", "score_pool4", "score_pool3"):
            kernel = rng.normal(size=layer.kernel.shape) / np.sqrt(layer.kernel.shape[2])
            layer.kernel.assign(kernel - kernel.mean(axis=2, keepdims=True))
    return model


@pytest.fixture(scope="module")
def models():
    return {name: small_fcn(name, seed) for seed, name in enumerate(VARIANTS)}


def half_size(image: np.ndarray) -> np.ndarray:
    """The image at half its height and width (rounded down: 375x500 gives an odd 187x250)."""
    height, width = image.shape[:2]
    return cv2.resize(image, (width // 2, height // 2), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def images(camvid_root):
    """A real CamVid test frame and the VOC sample image, at half size (a quarter of the compute;
    sizes that are not multiples of 32, so the padding and crop inside the files are exercised)."""
    frames = sorted((camvid_root / "test").glob("*.png"))[:1]
    found = {p.stem: half_size(load_image(p)) for p in frames}
    found["voc_001763"] = half_size(load_image(SAMPLE_ROOT / "JPEGImages" / "001763.jpg"))
    assert [im.shape for im in found.values()] == [(*LITERT_SIZE, 3), (187, 250, 3)]
    return found


@pytest.fixture(scope="module")
def references(models, images):
    return {(m, i): (predict_logits(model, image[None])[0], predict_mask(model, image))
            for m, model in models.items() for i, image in images.items()}  # fmt: skip


def run_checker(fmt: str, paths, images: dict, work: Path) -> list[dict]:
    """Run the exported files in a fresh process that cannot import fcnseg; return their outputs."""
    np.savez(work / "inputs.npz", **images)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    command = [sys.executable, str(CHECKER), fmt, str(work / "inputs.npz"), str(work), *map(str, paths)]
    with subprocess.Popen(command, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          start_new_session=True) as proc:  # fmt: skip
        try:
            out, err = proc.communicate(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise AssertionError(f"export_check.py {fmt} took over {TIMEOUT_S} s")
    assert proc.returncode == 0, f"export_check.py {fmt} failed:\n{err[-3000:]}"
    assert len(out.splitlines()) == len(paths) and all(json.loads(line) for line in out.splitlines())
    return [dict(np.load(work / f"{i}.npz")) for i in range(len(paths))]


@pytest.fixture(scope="module")
def saved_model(models, tmp_path_factory):
    """CLI_VARIANT saved as a user's best.keras, for the command line."""
    path = tmp_path_factory.mktemp("keras") / f"{CLI_VARIANT}.keras"
    models[CLI_VARIANT].save(path)
    return path


@pytest.fixture(scope="module")
def exports(models, saved_model, tmp_path_factory):
    """``exports(fmt, name)``: the model's file in that format, made once for the whole module.

    CLI_VARIANT goes through `fcnseg-export` (its `main`, on the saved .keras file), so the
    runtime checks below cover the command line's files as well as export_model's."""
    made = {}
    folder = tmp_path_factory.mktemp("exports")

    def export(fmt, name):
        if (fmt, name) not in made:
            path = folder / f"{name}{SUFFIXES[fmt] or '_' + fmt}"
            size = LITERT_SIZE if fmt == "litert" else None
            if name == CLI_VARIANT:
                argv = [str(saved_model), "--format", fmt, "--out", str(path)]
                assert main([*argv, *(["--input-size", *map(str, size)] if size else [])]) == 0
            else:
                export_model(models[name], path, format=fmt, input_size=size)
            made[fmt, name] = path
        return made[fmt, name]

    return export


@pytest.fixture(scope="module", params=list(SUFFIXES))
def runtime_outputs(request, exports, images, tmp_path_factory):
    """(format, {variant: checker outputs}, {variant: exported path}) for every variant."""
    fmt = request.param
    work = tmp_path_factory.mktemp(fmt)
    paths = {name: exports(fmt, name) for name in VARIANTS}
    runnable = {k: v for k, v in images.items() if fmt != "litert" or v.shape[:2] == LITERT_SIZE}
    outputs = run_checker(fmt, paths.values(), runnable, work)
    return fmt, dict(zip(paths, outputs)), paths


def assert_agrees(outputs: dict, references: dict, variant: str, min_agreement=MIN_AGREEMENT, rtol=LOGIT_RTOL):
    names = [k.removeprefix("classes_") for k in outputs if k.startswith("classes_")]
    assert names
    for name in names:
        logits, mask = references[(variant, name)]
        classes = outputs[f"classes_{name}"]
        assert classes.shape == mask.shape and outputs[f"logits_{name}"].shape == logits.shape
        assert np.unique(mask).size >= 2, "the weights must separate classes for the check to mean anything"
        agreement = (classes == mask).mean()
        assert agreement >= min_agreement, f"{variant} {name}: class maps agree on {agreement:.4%}"
        atol = rtol * np.abs(logits).max()
        np.testing.assert_allclose(outputs[f"logits_{name}"], logits, rtol=0, atol=atol, err_msg=f"{variant} {name}")


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_exported_model_matches_keras_in_its_runtime(runtime_outputs, references, variant):
    """For CLI_VARIANT this checks the files `fcnseg-export` wrote, SavedModel, ONNX and LiteRT."""
    fmt, outputs, _ = runtime_outputs
    assert_agrees(outputs[variant], references, variant)


def test_litert_float16_halves_the_file_and_agrees(models, exports, images, references, tmp_path):
    plain = exports("litert", "fcn8s")
    half = tmp_path / "fcn8s_fp16.tflite"
    export_model(models["fcn8s"], half, format="litert", input_size=LITERT_SIZE, quantize="float16")
    assert 0.45 < half.stat().st_size / plain.stat().st_size < 0.55
    frames = {k: v for k, v in images.items() if v.shape[:2] == LITERT_SIZE}
    (outputs,) = run_checker("litert", [half], frames, tmp_path)
    assert_agrees(outputs, references, "fcn8s", min_agreement=0.995, rtol=1e-2)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(format="keras"), "Unknown export format"),
        (dict(format="litert"), "fixed input_size"),
        (dict(format="litert", input_size=(360,)), "two positive integers"),
        (dict(format="onnx", quantize="float16"), "LiteRT only"),
        (dict(format="litert", input_size=(64, 64), quantize="int4"), "Unknown quantize"),
    ],
)
def test_export_refuses_bad_arguments(models, tmp_path, kwargs, message):
    suffix = ".tflite" if kwargs["format"] == "litert" else ".onnx"
    with pytest.raises(ValueError, match=message):
        export_model(models["fcn8s"], tmp_path / f"m{suffix}", **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_export_refuses_an_existing_path_unless_overwrite(models, tmp_path):
    target = tmp_path / "served"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        export_model(models["fcn32s_notebook"], target)
    assert (target / "old.txt").exists()
    export_model(models["fcn32s_notebook"], target, overwrite=True)
    assert (target / "saved_model.pb").is_file() and not (target / "old.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["served"]  # no temporary left beside it


def test_export_names_the_missing_converter_package(models, tmp_path, monkeypatch):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    hide_tf2onnx = lambda name, *args: None if name == "tf2onnx" else real_find_spec(name, *args)  # noqa: E731
    monkeypatch.setattr(importlib.util, "find_spec", hide_tf2onnx)
    with pytest.raises(ModuleNotFoundError, match="pip install tf2onnx"):
        export_model(models["fcn8s"], tmp_path / "m.onnx", format="onnx")


def test_cli_refuses_to_overwrite_and_names_the_missing_input_size(saved_model, exports, capsys):
    out = exports("litert", CLI_VARIANT)  # made by the command line above
    before = out.read_bytes()
    argv = [str(saved_model), "--format", "litert", "--out", str(out)]
    assert main([*argv, "--input-size", "64", "96"]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert main([*argv, "--overwrite"]) == 1  # litert without --input-size
    assert "input_size" in capsys.readouterr().err
    assert out.read_bytes() == before  # refused before converting anything


def test_cli_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    assert "--format" in capsys.readouterr().out
