"""The installed package: importable from any folder with its public API, leaving the
process's stderr and environment alone, console scripts that answer --help without
TensorFlow, fcnseg-predict on real images, and results files that hold no machine paths."""

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import fcnseg
from fcnseg.datasets import SAMPLE_ROOT, get_spec
from fcnseg.cli import main_predict as predict_main

REPO = Path(__file__).resolve().parents[1]
API = ("build_fcn", "load_fcn", "make_dataset", "read_split", "load_image", "load_mask", "folder_dataset", "train",
       "evaluate", "predict_mask", "predict_masks", "colorize", "overlay", "show_predictions", "mean_iou",
       "confusion_matrix")  # fmt: skip
SCRIPTS = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]  # name -> module:function


def test_imports_from_another_folder_with_its_api_and_quiets_tensorflow(tmp_path):
    """From a folder outside the checkout, with nothing on PYTHONPATH: the public API, and
    `quiet_tensorflow` called first hides TensorFlow's start-up lines (the API loads TensorFlow)."""
    code = (
        "import json, os, sys, fcnseg\n"
        "fcnseg.quiet_tensorflow()\n"
        f"names = {list(API)!r}\n"
        "print(json.dumps({'version': fcnseg.__version__, 'missing': [n for n in names if not hasattr(fcnseg, n)],"
        " 'all': sorted(fcnseg.__all__), 'train': callable(fcnseg.train) and fcnseg.train.__module__,"
        " 'submodules': [m for m in ('fcnseg.models.fcn', 'fcnseg.datasets.pipeline', 'fcnseg.training.loop') if m in sys.modules],"
        " 'log_level': os.environ['TF_CPP_MIN_LOG_LEVEL'], 'tensorflow': 'tensorflow' in sys.modules}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TF_CPP_MIN_LOG_LEVEL")}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=180)  # fmt: skip
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout.strip().splitlines()[-1])
    assert info["version"] == fcnseg.__version__ != "0+unknown"
    assert info["missing"] == [] and set(API) <= set(info["all"])
    assert info["submodules"] == ["fcnseg.models.fcn", "fcnseg.datasets.pipeline", "fcnseg.training.loop"]
    assert info["train"] == "fcnseg.training.loop"  # the function
    assert info["tensorflow"] and info["log_level"] == "1"
    for noise in ("cuInit", "absl::InitializeLog", "cudart_stub", "oneDNN custom operations"):
        assert noise not in done.stderr


IMPORT_CHANGES_NOTHING = """
import json, os, sys
import keras, tensorflow  # first: their own settings (TF2_BEHAVIOR, ...) are not fcnseg's
dup2_calls = []
real_dup2 = os.dup2
os.dup2 = lambda fd, fd2, *a: (dup2_calls.append(fd2), real_dup2(fd, fd2, *a))[1]  # records, then does it
before = dict(os.environ), os.fstat(2).st_ino
import fcnseg
model = fcnseg.build_fcn("fcn8s", num_classes=3, fc_units=8, backbone_weights=None)  # TensorFlow at work
print(json.dumps({"environ": dict(os.environ) == before[0], "fd2": os.fstat(2).st_ino == before[1],
                  "dup2": dup2_calls, "tensorflow": "tensorflow" in sys.modules}))
"""


def test_import_leaves_stderr_and_the_environment_alone():
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run([sys.executable, "-c", IMPORT_CHANGES_NOTHING], env=env, capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    info = json.loads(done.stdout.strip().splitlines()[-1])
    assert info == {"environ": True, "fd2": True, "dup2": [], "tensorflow": True}


def test_the_start_up_filter_lets_other_messages_through(capfd):
    from fcnseg.quiet import filtered_stderr

    with filtered_stderr():
        os.write(2, b"E0000 cuda_platform.cc:52] failed call to cuInit: no driver\n")
        os.write(2, b"W0000 real_warning.cc:1] something a user must see\n")
    err = capfd.readouterr().err
    assert "something a user must see" in err and "cuInit" not in err


RUN_SCRIPT = """
import resource, sys
module, function = sys.argv[1].split(":")
try:
    code = getattr(__import__(module, fromlist=[function]), function)(sys.argv[2:])
except SystemExit as e:
    code = e.code
usage = resource.getrusage(resource.RUSAGE_SELF)
print()
print("RESULT", code, "tensorflow" in sys.modules, usage.ru_utime + usage.ru_stime)
"""


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_every_console_script_answers_help_and_argument_errors_without_tensorflow(name):
    """Each script of pyproject.toml (run as its entry point) answers at once: under a second of CPU."""
    for args, exit_code in ((["--help"], 0), (["--no-such-option"], 2)):
        done = subprocess.run([sys.executable, "-c", RUN_SCRIPT, SCRIPTS[name], *args], capture_output=True,
                              text=True, timeout=180)  # fmt: skip
        code, tensorflow, seconds = done.stdout.strip().splitlines()[-1].split()[1:]
        assert (int(code), tensorflow) == (exit_code, "False"), (name, args, done.stderr)
        assert float(seconds) < 1.0, (name, args, seconds)
        assert (done.stdout if exit_code == 0 else done.stderr).startswith(f"usage: {name}"), name


def test_train_cli_refuses_an_unknown_option_or_a_bad_value_without_tensorflow():
    from fcnseg.cli import train_options

    for argv, message in ((["--fc-unit", "64"], "unrecognized arguments: --fc-unit"),
                          (["--recipe", "best"], "invalid choice"), (["--precision", "float8"], "invalid choice"),
                          (["--epochs", "abc"], "argument --epochs: invalid int value: 'abc'"),
                          (["--batch-size", "0"], "batch_size must be an integer >= 1, got 0"),
                          (["--dropout", "1"], "dropout must be a number in [0, 1)")):  # fmt: skip
        done = subprocess.run([sys.executable, "-c", RUN_SCRIPT, SCRIPTS["fcnseg-train"], *argv],
                              capture_output=True, text=True, timeout=180)  # fmt: skip
        assert done.stdout.split()[-3:-1] == ["2", "False"] and message in done.stderr, (argv, done.stderr)
    args, options = train_options(["--recipe", "camvid", "--epochs", "40", "--image-size", "360", "480",
                                   "--learning-rate", "2e-5", "--backbone-weights", "none", "--jit-compile", "--flip",
                                   "--eval-batch-size", "2"])  # fmt: skip
    assert options.epochs == 40 and options.image_size == (360, 480) and options.learning_rate == 2e-5
    assert options.backbone_weights is None and options.jit_compile is True and options.flip is True
    assert options.step("evaluate")["batch_size"] == 2 and options.step("make_dataset")["batch_size"] == 8
    assert options.skip_scales == (1.0, 1.0) and options.color_jitter == 0.3  # the rest is the recipe's


def test_a_second_stage_changes_only_how_the_first_stages_model_trains():
    """A second stage trains the first stage's model further: an architecture option in
    `SECOND_STAGES` would be silently ignored. The stages differ in what it lists, nothing else."""
    from fcnseg.options import Options
    from fcnseg.recipes import RECIPES, SECOND_STAGES, stages

    architecture = set(Options().step("build_fcn"))
    for name, changes in SECOND_STAGES.items():
        assert name in RECIPES and changes and not architecture & set(changes), name
        first, second = stages(name)
        assert {k for k, v in first.as_dict().items() if second.as_dict()[k] != v} == set(changes)


def test_train_cli_help_lists_every_option_with_its_default(capsys):
    from fcnseg.cli import train_options
    from fcnseg.options import flag_name, names

    with pytest.raises(SystemExit):
        train_options(["--help"])
    shown = capsys.readouterr().out
    for name in names():
        assert flag_name(name) in shown, name
    assert shown.count("(default: ") >= len(names())


def test_every_prediction_function_and_command_takes_its_defaults_from_predict_options(capsys):
    """`PredictOptions` declares prediction's defaults once: each function's keyword of the same name
    has its default, `Options` its test-time ones, and the command lines show them in --help."""
    import dataclasses
    import inspect

    from fcnseg.cli import main_evaluate, main_predict
    from fcnseg.inference.evaluation import evaluate
    from fcnseg.options import Options, PredictOptions, flag_name
    from fcnseg.inference.predict import predict_logits, predict_mask, predict_masks
    from fcnseg.inference.segment import segment_files
    from fcnseg.inference.video import segment_frames, segment_video

    defaults = PredictOptions().keywords(PredictOptions.__dataclass_fields__)
    for function in (predict_logits, predict_mask, predict_masks, segment_files, segment_video, segment_frames,
                     evaluate):  # fmt: skip
        taken = {name: p.default for name, p in inspect.signature(function).parameters.items() if name in defaults}
        assert taken and {name: defaults[name] for name in taken if name != "precision"} == \
            {name: value for name, value in taken.items() if name != "precision"}, function.__name__  # fmt: skip
    evaluation = Options().step("evaluate")
    assert {k: evaluation[k] for k in ("input_size", "scales", "flip", "batch_size")} == \
        {k: defaults[k] for k in ("input_size", "scales", "flip", "batch_size")}  # fmt: skip
    for command, names in ((main_predict, [f.name for f in dataclasses.fields(PredictOptions)]),
                           (main_evaluate, ["input_size", "scales", "flip", "batch_size", "precision"])):
        with pytest.raises(SystemExit):
            command(["--help"])
        shown = " ".join(capsys.readouterr().out.split())
        for name in names:
            assert flag_name(name) in shown, (command.__name__, name)
        assert "(default: 8)" in shown, command.__name__  # the batch


def test_a_command_line_error_is_one_line_without_a_traceback(tmp_path, capsys):
    from fcnseg.cli import main_train

    argv = ["--dataset", "camvid", "--root", str(tmp_path / "none"), "--out", str(tmp_path / "run")]
    assert main_train(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: camvid not found") and err.count("\n") == 1 and "Set CAMVID_ROOT" in err
    with pytest.raises(FileNotFoundError):  # --debug: the exception, with its traceback
        main_train([*argv, "--debug"])


def test_a_wheel_carries_the_shipped_model_and_photos_and_loads_them_outside_the_checkout(tmp_path):
    """``pip install .`` (a wheel, not the editable checkout): ``load_fcn("camvid-fcn8s")`` from the
    installed package's own files segments a bundled street photo at its size."""
    source = tmp_path / "source"  # a copy: building writes build/ and *.egg-info beside the sources
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copyfile(REPO / name, source / name)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "-q", "-w", str(tmp_path)],
                           capture_output=True, text=True, timeout=600)  # fmt: skip
    assert built.returncode == 0, built.stderr
    [wheel] = tmp_path.glob("fcnseg-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("models/camvid-fcn8s/model.keras", "models/camvid-fcn8s/metrics.json",
                 "models/camvid-fcn8s/README.md", "sample/street/LICENSE", "sample/street/solidWhiteCurve.jpg"):
        assert f"fcnseg/{name}" in names, name
    site = tmp_path / "site"
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site),
                                str(wheel)], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    code = ("import fcnseg; from fcnseg.models.pretrained import street_images\n"
            "mask = fcnseg.predict_mask(fcnseg.load_fcn('camvid-fcn8s'), street_images()[0])\n"
            "print(fcnseg.__file__, mask.shape)")
    env = {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "PYTHONPATH": str(site), "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    path, shape = done.stdout.strip().splitlines()[-1].split(" ", 1)
    assert Path(path).is_relative_to(site) and shape == "(540, 960)"


def test_console_scripts_are_found_off_path(script, monkeypatch):
    monkeypatch.setenv("PATH", os.devnull)  # a PATH without the scripts: a virtual environment not activated
    for name in SCRIPTS:
        path = Path(script(name))
        assert path.is_file() and path.name.startswith(name), path


def test_every_installed_console_script_answers_help(script):
    assert {"fcnseg-train", "fcnseg-evaluate", "fcnseg-download", "fcnseg-predict", "fcnseg-export"} <= set(SCRIPTS)
    for name in SCRIPTS:
        done = subprocess.run([script(name), "--help"], capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, (name, done.stderr)
        assert done.stdout.startswith(f"usage: {name}"), name


# ------------------------------------------------------------------ fcnseg-predict


@pytest.fixture(scope="module")
def small_model_file(tmp_path_factory):
    """A random-weight FCN-8s with CamVid's 11 classes, saved as a user's best.keras would be.

    Its score kernels have zero mean over their inputs, so that its maps hold several
    classes (random ReLU features share one direction that plain random kernels turn
    into one class everywhere) and test-time augmentation changes some pixels."""
    import keras

    keras.utils.set_random_seed(0)
    path = tmp_path_factory.mktemp("model") / "fcn8s.keras"
    model = fcnseg.build_fcn("fcn8s", num_classes=11, backbone_weights=None, fc_units=16)
    kernel = np.random.default_rng(0).normal(size=model.get_layer("score_fr").kernel.shape)
    model.get_layer("score_fr").kernel.assign(kernel - kernel.mean(axis=2, keepdims=True))
    model.save(path)
    return path


@pytest.fixture()
def photos(camvid_root, tmp_path):
    """Two real CamVid test frames, the real VOC image, and a corrupt JPEG among them."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for frame in sorted((camvid_root / "test").glob("*.png"))[:2]:
        (folder / frame.name).symlink_to(frame)
    (folder / "001763.jpg").symlink_to(SAMPLE_ROOT / "JPEGImages" / "001763.jpg")
    (folder / "broken.jpg").write_bytes((SAMPLE_ROOT / "JPEGImages" / "001763.jpg").read_bytes()[:300])
    return folder


def read_png(path) -> np.ndarray:
    return np.asarray(Image.open(path))


def assert_outputs(out, photo, mask, alpha):
    """The colour mask is CamVid's colours of `mask`; the overlay (1 - alpha) * photo + alpha * colours."""
    colours = get_spec("camvid").colormap[mask]
    np.testing.assert_array_equal(read_png(out / "colored" / f"{photo.stem}.png"), colours)
    blend = (1 - alpha) * fcnseg.load_image(photo).astype(np.float64) + alpha * colours
    overlay = read_png(out / "overlays" / f"{photo.stem}.png").astype(np.int64)
    assert np.abs(overlay - np.rint(blend)).max() <= 1  # rounding at .5 may go either way


def test_predict_cli_writes_every_output_at_each_images_size_and_skips_bad_files(small_model_file, photos, tmp_path,
                                                                                  script, capsys, told_precision):  # fmt: skip
    out = tmp_path / "out"
    options = ["--input-size", "90", "120", "--scales", "1", "1.5", "--flip", "--alpha", "0.3", "--dataset", "camvid",
               *(["--precision", told_precision["precision"]] if told_precision else [])]  # fmt: skip
    done = subprocess.run([script("fcnseg-predict"), str(small_model_file), str(photos), "--out", str(out), *options,
                           "--quiet"], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 1, done.stderr  # one input failed
    assert "broken.jpg" in done.stderr and "Cannot decode" in done.stderr
    good = sorted(p for p in photos.iterdir() if p.name != "broken.jpg")
    assert len(good) == 3
    model = fcnseg.load_fcn(small_model_file, precision="auto")  # as fcnseg-predict runs it
    for photo in good:
        width, height = Image.open(photo).size
        mask = read_png(out / "masks" / f"{photo.stem}.png")
        assert mask.shape == (height, width) and mask.dtype == np.uint8 and mask.max() < 11
        for kind in ("colored", "overlays"):
            picture = Image.open(out / kind / f"{photo.stem}.png")
            assert picture.size == (width, height) and picture.mode == "RGB"
        # The mask is the model's prediction for that photo, with the options given.
        at_size = fcnseg.predict_mask(model, photo, input_size=(90, 120))
        np.testing.assert_array_equal(mask, fcnseg.predict_mask(model, photo, input_size=(90, 120),
                                                                scales=(1.0, 1.5), flip=True))  # fmt: skip
        assert not np.array_equal(mask, at_size)  # the scales and the flip show
        assert np.unique(mask).size >= 2
        assert_outputs(out, photo, mask, alpha=0.3)
    assert not any((out / kind / "broken.png").exists() for kind in ("masks", "colored", "overlays"))
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]  # no half-written temporary files

    # A second run keeps what exists (byte for byte) and only reports the bad file again.
    argv = [str(small_model_file), str(photos), "--out", str(out), "--input-size", "90", "120", "--quiet"]
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.rglob("*.png")}
    capsys.readouterr()
    assert predict_main(argv) == 1 and "0 file(s) written, 9 kept" in capsys.readouterr().out
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.rglob("*.png")} == before

    # --overwrite replaces them all: the plain prediction at 90x120, overlays at the default alpha 0.5.
    assert predict_main([*argv, "--overwrite"]) == 1 and "9 file(s) written, 0 kept" in capsys.readouterr().out
    for photo in good:
        mask = read_png(out / "masks" / f"{photo.stem}.png")
        np.testing.assert_array_equal(mask, fcnseg.predict_mask(model, photo, input_size=(90, 120)))
        assert_outputs(out, photo, mask, alpha=0.5)
    assert predict_main([*argv, "--dataset", "voc2007"]) == 1  # --dataset reaches segment_files
    assert "dataset 'voc2007' has 21" in capsys.readouterr().err


def test_segment_files_overwrite_globs_and_missing_inputs(small_model_file, photos, tmp_path):
    model = fcnseg.load_fcn(small_model_file)
    out = tmp_path / "seg"
    first = fcnseg.segment_files(model, [str(photos / "*.jpg")], out, progress=False)
    assert sorted(first["failed"]) == [str(photos / "broken.jpg")] and len(first["written"]) == 3
    (out / "colored" / "001763.png").unlink()
    second = fcnseg.segment_files(model, [photos / "001763.jpg", tmp_path / "nope.jpg"], out, progress=False)
    assert second["written"] == [out / "colored" / "001763.png"] and len(second["kept"]) == 2
    assert "No such image file" in second["failed"][str(tmp_path / "nope.jpg")]
    third = fcnseg.segment_files(model, [photos / "001763.jpg"], out, overwrite=True, progress=False)
    assert len(third["written"]) == 3 and third["kept"] == []
    with pytest.raises(ValueError, match="dataset 'voc2007' has 21"):
        fcnseg.segment_files(model, [photos], out, dataset="voc2007")


# ------------------------------------------------------------------ results/ files


ABSOLUTE = re.compile(r"""(?:^|["'\s=(])(?:/(?:[\w.-]+/)+[\w.-]*|[A-Za-z]:\\)""")


def _strings(value):
    if isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, str):
        yield value


def test_no_results_file_records_an_absolute_path():
    files = [p for p in (REPO / "results").rglob("*") if p.is_file() and p.suffix in (".json", ".jsonl", ".csv", ".txt", ".md")]
    assert files, "results/ holds no text files to check"
    offenders = []
    for path in files:
        text = path.read_text()
        if path.suffix == ".json":
            bad = [s for s in _strings(json.loads(text)) if os.path.isabs(s) or re.match(r"[A-Za-z]:\\", s)]
        else:
            bad = ABSOLUTE.findall(text)
        offenders += [f"{path.relative_to(REPO)}: {b}" for b in bad]
    assert offenders == []


def test_every_results_metrics_json_agrees_with_its_own_confusion_matrix():
    """Each metrics.json under results/ that holds a confusion matrix gives the scores that matrix
    gives (fcnseg.metrics.summarize), and its figures are files in its own folder."""
    from fcnseg.metrics import summarize

    files = [p for p in (REPO / "results").rglob("*metrics.json") if "confusion_matrix" in json.loads(p.read_text())]
    assert REPO / "results" / "camvid" / "metrics.json" in files
    for path in files:
        recorded = json.loads(path.read_text())
        classes = list(recorded["iou_per_class"])
        recomputed = summarize(np.asarray(recorded["confusion_matrix"]), classes)
        for key in ("mean_iou", "frequency_weighted_iou", "pixel_accuracy"):
            assert recorded[key] == pytest.approx(recomputed[key], abs=1e-9), (path, key)
        for name in classes:
            assert recorded["iou_per_class"][name] == pytest.approx(recomputed["iou_per_class"][name], abs=1e-9, nan_ok=True)
        for figure in recorded.get("figures", {}).values():
            assert (REPO / figure).is_file() and (REPO / figure).parent == path.parent, (path, figure)


def test_portable_paths(tmp_path, monkeypatch):
    from fcnseg.files import portable_path

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CAMVID_ROOT", str(tmp_path / "elsewhere" / "camvid"))
    assert portable_path(tmp_path / "runs" / "best.keras") == "runs/best.keras"
    assert portable_path("relative/x.h5") == "relative/x.h5"
    assert portable_path(tmp_path.parent / "other" / "w.h5") == "w.h5"
    assert portable_path(tmp_path / "elsewhere" / "camvid" / "test") in ("$CAMVID_ROOT/test", "elsewhere/camvid/test")
    monkeypatch.chdir(REPO)
    assert portable_path(tmp_path / "elsewhere" / "camvid" / "test") == "$CAMVID_ROOT/test"
