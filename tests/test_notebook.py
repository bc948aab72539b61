"""Tests of the notebook ``semantic_segmentation_fcn32.ipynb`` and of `fcnseg.runner.plan_run`.

- The notebook's structure (fast): a clean file, the papermill ``parameters``
  cell first (a recipe and single-value overrides), every parameter forwarded to
  `plan_run`, TensorFlow quieted before it is imported, no code defined in it.
- `plan_run` itself (fast): every bad parameter fails with a clear message,
  the data folder is resolved (download, fallback to the sample, CamVid errors).
- The whole notebook executed with papermill in quick mode (64-wide fc6/fc7) on
  the one-image sample: every figure is a real PNG, ``metrics.json`` holds the
  scores, and no TensorFlow start-up line reaches a cell. A bad parameter makes
  it fail in its first cells, with `plan_run`'s message.

The encoder weights come from ``FCN_BACKBONE_WEIGHTS`` (the ``vgg_weights``
fixture) when it is set, else the encoder is random: nothing is downloaded.
"""

import ast
import dataclasses
import inspect
import json
import shutil
from pathlib import Path

import nbformat
import pytest
from PIL import Image

from fcnseg import runner
from fcnseg.figures import notebook_images, scores
from fcnseg.options import ParameterError
from fcnseg.runner import plan_run
from fcnseg.datasets import DATASETS, read_split
from fcnseg.models.pretrained import model_file, street_images

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "semantic_segmentation_fcn32.ipynb"
from fcnseg.datasets import SAMPLE_ROOT as SAMPLE
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FIGURES = ("class_mask", "training_curves", "iou_per_class", "confusion_matrix", "sem_seg", "sem_seg_inf")


@pytest.fixture(scope="module")
def notebook():
    return nbformat.read(NOTEBOOK, as_version=4)


@pytest.fixture
def backbone_weights(request):
    """The VGG16 weight file of ``FCN_BACKBONE_WEIGHTS`` when set, else None (random encoder)."""
    try:
        return str(request.getfixturevalue("vgg_weights"))
    except pytest.skip.Exception:
        return None


@pytest.fixture
def fake_voc(tmp_path):
    """A copy of the sample laid out as ``tmp/VOCdevkit/VOC2007`` (a "real" dataset of one image)."""
    voc = tmp_path / "VOCdevkit" / "VOC2007"
    shutil.copytree(SAMPLE, voc)
    return voc


def quiet(**params):
    """plan_run with no printing and the default encoder left out of the way."""
    params["overrides"] = {"backbone_weights": None, **params.get("overrides", {})}
    return plan_run(**{"verbose": False, **params})


# =============================================================================== notebook structure


def code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def test_notebook_is_clean(notebook):
    nbformat.validate(notebook)
    for cell in code_cells(notebook):
        assert cell.outputs == [], "commit the notebook without outputs"
        assert cell.execution_count is None, "commit the notebook without execution counts"
    assert notebook.metadata["kernelspec"]["name"] == "python3"


def test_parameters_cell_comes_first_and_is_checked_at_once(notebook):
    cells = code_cells(notebook)
    assert "parameters" in cells[0].metadata.get("tags", []), "the first code cell must be tagged 'parameters'"
    names = [t.id for node in ast.parse(cells[0].source).body for t in node.targets]
    command_line_only = ("run_dir", "strategy", "verbose")
    notebook_fixed = ("offline_fallback",)  # the notebook always falls back to the shipped model offline
    assert "offline_fallback=True" in cells[1].source
    wanted = [p for p in inspect.signature(plan_run).parameters if p not in command_line_only + notebook_fixed]
    assert names == wanted, "the parameters cell and plan_run must list the same parameters"
    assert "plan_run(" in cells[1].source, "the cell after the parameters must check them"
    quieted, imported = (cells[1].source.index(text) for text in ("quiet_tensorflow()", "from fcnseg.runner"))
    assert quieted < imported, "TensorFlow is quieted before anything imports it"
    for name in names:
        assert f"{name}={name}" in cells[1].source, f"parameter {name} is not passed to plan_run"
    # The defaults of the notebook are those of plan_run (recipes.DEFAULT, no overrides).
    defaults = {}
    exec(cells[0].source, {}, defaults)
    for name in names:
        assert defaults[name] == ({} if name == "overrides" else inspect.signature(plan_run).parameters[name].default), name


def test_notebook_delegates_code_to_src(notebook):
    text = "\n".join(c.source for c in notebook.cells)
    for cell in code_cells(notebook):
        tree = ast.parse("\n".join(l for l in cell.source.splitlines() if not l.startswith("%")))
        defined = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.Lambda))]
        assert not defined, f"define helpers in src/, not in the notebook:\n{cell.source}"
    assert "../shared" not in text and "/work/" not in text, "no machine-specific paths"
    for call in ("plan.datasets(", "plan.build_model(", "plan.train(", "plan.evaluate(", "predict_mask(", "show_predictions("):
        assert call in text


# =============================================================================== plan_run


@pytest.mark.parametrize(
    "params, message",
    [
        ({"recipe": "best"}, "Unknown recipe 'best': use one of 'reference', 'camvid', 'voc2007'"),
        ({"overrides": {"fc_unit": 64}}, "Unknown option 'fc_unit'"),
        ({"overrides": [("epochs", 2)]}, "overrides must be a dict"),
        ({"data_note": ""}, "data_note must be a line of text or None"),
        ({"overrides": {"dataset": "coco"}}, "Unknown dataset 'coco': use one of 'voc2007', 'camvid'"),
        ({"overrides": {"variant": "fcn64s"}}, "Unknown variant 'fcn64s': use one of 'fcn32s', 'fcn16s', 'fcn8s'"),
        ({"overrides": {"decoder": "unet"}}, "Unknown decoder 'unet'"),
        ({"recipe": "reference", "overrides": {"variant": "fcn8s"}}, "decoder='notebook' is the reference notebook's FCN-32s decoder"),
        ({"overrides": {"loss": "lovasz"}}, "Unknown loss 'lovasz': use one of 'sparse_ce', 'bce', 'dice'"),
        ({"overrides": {"schedule": "cosine"}}, "Unknown schedule 'cosine'"),
        ({"overrides": {"precision": "float16"}}, "Unknown precision 'float16'"),
        ({"overrides": {"image_size": (256,)}}, "image_size must be (height, width), two positive integers"),
        ({"overrides": {"image_size": (0, 256)}}, "image_size must be (height, width)"),
        ({"overrides": {"image_size": (256.0, 256)}}, "image_size must be (height, width)"),
        ({"overrides": {"image_size": "(256, 256)"}}, "with papermill pass a list"),
        ({"overrides": {"image_size": (True, 256)}}, "image_size must be (height, width)"),
        ({"overrides": {"input_size": (-1, 5)}}, "input_size must be (height, width)"),
        ({"overrides": {"epochs": 0}}, "epochs must be an integer >= 1, got 0"),
        ({"overrides": {"epochs": 2.5}}, "epochs must be an integer >= 1"),
        ({"overrides": {"batch_size": 0}}, "batch_size must be an integer >= 1"),
        ({"overrides": {"max_images": 0}}, "max_images must be an integer >= 1"),
        ({"overrides": {"learning_rate": 0}}, "learning_rate must be a positive number"),
        ({"overrides": {"learning_rate": float("nan")}}, "learning_rate must be a positive number"),
        ({"quick": "yes"}, "quick must be True or False"),
        ({"download": 1}, "download must be True or False"),
        ({"overrides": {"flip": "yes"}}, "flip must be True or False"),
        ({"overrides": {"scales": []}}, "scales must be one or more positive factors"),
        ({"overrides": {"scales": [1.0, 0]}}, "scales must be one or more positive factors"),
        ({"overrides": {"seed": 1.5}}, "seed must be an integer"),
        ({"overrides": {"eval_split": ""}}, "eval_split must be a split name"),
        ({"results_dir": 3}, "results_dir must be a folder path or None"),
        ({"data_root": 3}, "data_root must be a folder path or None"),
        ({"checkpoint": "missing/best.keras"}, "checkpoint missing/best.keras does not exist"),
        ({"checkpoint": "model.h5"}, "checkpoint must be a .keras file saved by fcnseg.train or a shipped model"),
        ({"overrides": {"backbone_weights": "missing_vgg16.h5"}}, "VGG16 weight file not found: missing_vgg16.h5"),
        ({"overrides": {"backbone_weights": 5}}, "backbone_weights must be 'imagenet', None or an encoder's no-top .h5 path"),
    ],
)
def test_bad_parameters_fail_with_a_clear_message(params, message, tmp_path):
    with pytest.raises(ParameterError, match=None) as info:
        plan_run(verbose=False, **{"results_dir": tmp_path, **params})
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)


def test_bad_parameters_are_caught_before_the_data_is_looked_at(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "find_data", lambda *a, **k: pytest.fail("data looked at first"))
    with pytest.raises(ParameterError):
        plan_run(overrides={"variant": "fcn64s"}, data_root=tmp_path / "nothing", verbose=False)


def test_quick_mode_on_the_sample(tmp_path, capsys):
    plan = plan_run(data_root=SAMPLE, quick=True, download=False, overrides={"backbone_weights": None},
                       results_dir=tmp_path)  # fmt: skip
    assert plan.data_root == (SAMPLE).resolve()
    assert (plan.options.image_size, plan.options.epochs, plan.steps) == ((64, 64), 1, runner.QUICK_STEPS)
    assert plan.options.fc_units == 64 and plan.options.variant == "fcn8s"  # small fc6/fc7
    assert plan.options.batch_size == 1  # the sample has one training image
    assert plan.options.max_images == runner.QUICK["max_images"] and plan.options.loss == "sparse_ce"
    assert plan.smoke_test and plan.eval_split == "val"
    assert plan.results_dir == tmp_path and plan.run_dir == tmp_path / "run"
    assert plan.encoder == "random initialisation (no pre-training)"
    assert plan.predict_options == {"input_size": (64, 64), "scales": (1.0,), "flip": False}  # scored at full size
    assert plan.options.step("make_dataset")["batch_size"] == 1 and plan.options.scale_range == (0.5, 1.5)
    out = capsys.readouterr().out
    assert "SMOKE TEST ON ONE IMAGE" in out and "quick mode" in out and "model input 64x64" in out


def test_test_time_augmentation_reaches_predict_options(tmp_path):
    tta = {"input_size": [64, 96], "scales": [1, 1.25], "flip": True}
    plan = quiet(data_root=SAMPLE, quick=True, download=False, results_dir=tmp_path, overrides=tta)
    assert plan.predict_options == {"input_size": (64, 96), "scales": (1.0, 1.25), "flip": True}
    assert plan.options.step("evaluate")["scales"] == (1.0, 1.25) and plan.options.step("evaluate")["max_images"] == 4
    assert "original resolution, input scales 1, 1.25 + flip averaging" in plan.describe()
    assert plan.caption("Inference", predicted=True).startswith("Inference (input scales 1, 1.25 + flip averaging)")
    assert "scales" not in plan.caption("Training curves")
    single = dataclasses.replace(plan, options=dataclasses.replace(plan.options, scales=(1.0,), flip=False))
    assert single.test_time == "" and single.caption("Inference", predicted=True) == single.caption("Inference")
    assert dataclasses.replace(single, options=dataclasses.replace(single.options, flip=True)).test_time == "flip averaging"
    assert plan.parameters["scales"] == (1.0, 1.25) and plan.parameters["recipe"] == "voc2007"


def test_a_data_note_is_said_under_every_figure_and_recorded(tmp_path):
    note = "VOC 2007 trainval images as re-encoded JPEG copies (about quality 75)"
    plan = quiet(data_root=SAMPLE, quick=True, download=False, results_dir=tmp_path, data_note=note)
    assert plan.caption("Inference", predicted=True).endswith("\n" + note) and plan.parameters["data_note"] == note
    assert quiet(data_root=SAMPLE, quick=True, download=False, results_dir=tmp_path).parameters["data_note"] is None


def test_smoke_tests_never_write_into_the_default_results(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    plan = quiet(data_root=SAMPLE, quick=True, download=False)
    assert plan.results_dir == Path("results") / "smoke_test"
    assert (tmp_path / "results" / "smoke_test").is_dir()


def test_a_complete_dataset_is_used_as_it_is(fake_voc, tmp_path):
    plan = quiet(data_root=fake_voc.parent.parent, overrides={"batch_size": 1, "image_size": [64, 96]},
                results_dir=tmp_path / "r")  # fmt: skip
    assert plan.data_root == fake_voc.resolve()  # a folder above VOCdevkit is accepted
    assert not plan.smoke_test and plan.options.image_size == (64, 96) and plan.options.epochs == 40
    assert plan.run_dir == Path("runs") / "voc2007_fcn8s"


def test_a_batch_larger_than_the_training_set_is_refused(fake_voc, tmp_path):
    with pytest.raises(ParameterError, match="batch_size=8 is larger than the 1 training images"):
        quiet(data_root=fake_voc, results_dir=tmp_path / "r")


def test_missing_voc_in_quick_mode_falls_back_to_the_sample(tmp_path, capsys):
    plan = quiet(data_root=tmp_path / "nothing", quick=True, results_dir=tmp_path, verbose=True)
    assert plan.data_root == SAMPLE.resolve() and plan.smoke_test
    out = capsys.readouterr().out
    assert "SMOKE TEST ON ONE IMAGE" in out and "does not exist" in out


def test_incomplete_voc_falls_back_to_the_sample(fake_voc, tmp_path, capsys):
    (fake_voc / "JPEGImages" / "001763.jpg").unlink()  # masks without images, as in ../shared
    plan = quiet(data_root=fake_voc, quick=True, results_dir=tmp_path, verbose=True)
    assert plan.data_root == SAMPLE.resolve()
    assert "JPEGImages/001763.jpg" in capsys.readouterr().out


def test_missing_voc_without_download_says_what_to_do_and_shows_the_shipped_model(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match="Set VOC_ROOT"):  # fcnseg-train and run(): an error
        quiet(data_root=tmp_path / "nothing", download=False, results_dir=tmp_path)
    plan = quiet(data_root=tmp_path / "nothing", download=False, results_dir=tmp_path, verbose=True,
                offline_fallback=True)  # the notebook's choice
    assert "Set VOC_ROOT" in plan.offline and "download=True" in plan.offline
    assert not plan.has_data and plan.checkpoint == model_file(runner.OFFLINE_MODEL) and plan.dataset == "camvid"
    [line] = capsys.readouterr().out.splitlines()  # one line says why and what runs instead
    assert line.startswith("offline: voc2007 not found") and "camvid-fcn8s" in line
    items, source = notebook_images.inference_images(plan)
    assert [path for _, path in items] == street_images() and "street" in source


def test_offline_figures_go_to_results_street_and_a_given_checkpoint_is_kept(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CAMVID_ROOT", str(tmp_path / "camvid"))
    plan = quiet(recipe="camvid", checkpoint="camvid-fcn8s", offline_fallback=True)
    assert plan.results_dir == Path("results") / "street" and plan.checkpoint_name == "camvid-fcn8s"
    assert "Set CAMVID_ROOT" in plan.offline and plan.run_dir is None and not plan.has_data


def _download_voc2007_with(fetch, monkeypatch):
    """VOC 2007's spec, as the run finds it by name, with `fetch` as its download."""
    monkeypatch.setitem(DATASETS, "voc2007", dataclasses.replace(DATASETS["voc2007"], download=fetch))


def test_missing_voc_is_downloaded_next_to_data_root(tmp_path, monkeypatch):
    calls = []

    def fake_download(root, *, splits):
        calls.append((Path(root), tuple(splits)))
        voc = Path(root) / "VOCdevkit" / "VOC2007"
        shutil.copytree(SAMPLE, voc)
        return voc

    _download_voc2007_with(fake_download, monkeypatch)
    wanted = tmp_path / "VOCdevkit" / "VOC2007"
    plan = quiet(data_root=wanted, overrides={"batch_size": 1}, results_dir=tmp_path / "r")
    assert calls == [(tmp_path, ("train", "val"))]
    assert plan.data_root == wanted.resolve() and not plan.smoke_test


def test_failed_download_goes_offline_on_the_shipped_model(tmp_path, monkeypatch):
    def offline(root, *, splits):
        raise ConnectionError("no network")

    _download_voc2007_with(offline, monkeypatch)
    plan = quiet(data_root=tmp_path / "voc", results_dir=tmp_path, offline_fallback=True)
    assert "the download failed: no network" in plan.offline and plan.data_root is None and not plan.smoke_test
    assert plan.checkpoint_name == "camvid-fcn8s"


def test_imagenet_weights_that_cannot_be_had_go_offline(tmp_path, monkeypatch):
    monkeypatch.delenv("FCN_BACKBONE_WEIGHTS", raising=False)
    monkeypatch.setattr(runner, "imagenet_weights_problem", lambda encoder: "the ImageNet VGG16 weights ... (no network)")
    plan = plan_run(data_root=SAMPLE, results_dir=tmp_path, verbose=False, offline_fallback=True)
    assert plan.offline.endswith("(no network)") and not plan.has_data
    assert plan_run(data_root=SAMPLE, results_dir=tmp_path, verbose=False).offline is None  # run(): no fallback
    assert quiet(data_root=SAMPLE, results_dir=tmp_path, offline_fallback=True).offline is None  # random encoder


def test_a_shipped_checkpoint_needs_its_dataset(tmp_path):
    with pytest.raises(ParameterError, match="'camvid-fcn8s' was trained on camvid.*recipe='camvid'"):
        quiet(data_root=SAMPLE, checkpoint="camvid-fcn8s", results_dir=tmp_path)


def test_missing_camvid_asks_for_camvid_root(tmp_path, monkeypatch):
    monkeypatch.setenv("CAMVID_ROOT", str(tmp_path / "camvid"))
    with pytest.raises(FileNotFoundError, match="Set CAMVID_ROOT"):
        quiet(recipe="camvid", quick=True, results_dir=tmp_path)


def test_unknown_eval_split_lists_the_available_ones(tmp_path):
    with pytest.raises(ParameterError, match=r"eval_split='bogus' is not a split .*'trainval', 'val'"):
        quiet(data_root=SAMPLE, quick=True, overrides={"eval_split": "bogus"}, results_dir=tmp_path)


def test_backbone_weights_from_the_environment(tmp_path, monkeypatch):
    weights = tmp_path / "my_vgg16_notop.h5"
    weights.write_bytes(b"")
    monkeypatch.setenv("FCN_BACKBONE_WEIGHTS", str(weights))
    plan = plan_run(data_root=SAMPLE, quick=True, results_dir=tmp_path, verbose=False)
    assert plan.options.backbone_weights == str(weights)
    assert plan.encoder.startswith("my_vgg16_notop.h5") and "not the Keras ImageNet" in plan.encoder
    none = quiet(data_root=SAMPLE, quick=True, overrides={"backbone_weights": "none"}, results_dir=tmp_path)
    assert none.options.backbone_weights is None
    monkeypatch.setenv("FCN_BACKBONE_WEIGHTS", str(tmp_path / "gone.h5"))
    with pytest.raises(ParameterError, match="from FCN_BACKBONE_WEIGHTS"):
        plan_run(data_root=SAMPLE, quick=True, results_dir=tmp_path, verbose=False)


def test_a_checkpoint_skips_training(tmp_path):
    checkpoint = tmp_path / "run" / "best.keras"
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(b"")
    (checkpoint.parent / "metrics.json").write_text(json.dumps({"parameters": {"backbone_weights": "imagenet"}}))
    plan = quiet(data_root=SAMPLE, checkpoint=str(checkpoint), overrides={"batch_size": 64}, results_dir=tmp_path)
    assert plan.checkpoint == checkpoint and plan.run_dir is None
    assert plan.options.batch_size == 64  # nothing is trained, so the batch size is not checked
    assert plan.encoder == "ImageNet (Keras VGG16), then trained (checkpoint best.keras)"


def test_helpers_choose_examples_on_the_sample(tmp_path):
    plan = quiet(data_root=SAMPLE, quick=True, results_dir=tmp_path)
    samples = read_split(plan.data_root, "train")
    sample, class_id = notebook_images.find_class_example(samples, "dog")
    assert (sample.id, plan.spec.classes[class_id]) == ("001763", "dog")
    items, source = notebook_images.inference_images(plan)
    assert [i for i, _ in items] == ["001763"] and "test" in source  # no reference images in the sample
    table = scores.score_table({"mean_iou": 0.5, "frequency_weighted_iou": None, "pixel_accuracy": 0.9})
    assert "0.67-0.72" in table and "n/a" in table


# =============================================================================== the notebook, executed


def run_notebook(tmp_path, **parameters):
    papermill = pytest.importorskip("papermill")
    out = tmp_path / "executed.ipynb"
    papermill.execute_notebook(
        str(NOTEBOOK), str(out), parameters=parameters, cwd=str(ROOT),
        kernel_name="python3", progress_bar=False, execution_timeout=600,
    )  # fmt: skip
    return out


def test_notebook_runs_in_quick_mode_on_real_voc_images(tmp_path, voc_root, backbone_weights, told_precision,
                                                        auto_precision):  # fmt: skip
    """Quick mode on VOC 2007 itself (VOC_ROOT; CI: ../shared's re-encoded JPEG copies), every cell."""
    results = tmp_path / "results"
    overrides = {"backbone_weights": backbone_weights, "scales": [1.0, 1.25], "flip": True, **told_precision}
    out = run_notebook(tmp_path, quick=True, data_root=str(voc_root), download=False, results_dir=str(results),
                       overrides=overrides)  # fmt: skip

    metrics = json.loads((results / "metrics.json").read_text())
    for key in ("mean_iou", "frequency_weighted_iou", "pixel_accuracy"):
        assert isinstance(metrics[key], float) and 0.0 <= metrics[key] <= 1.0, key
    assert len(metrics["iou_per_class"]) == 21 and "horse" in metrics["iou_per_class"]
    assert metrics["smoke_test"] is True and metrics["parameters"]["quick"] is True
    assert metrics["num_images"] == runner.QUICK["max_images"] and metrics["split"] == "val"
    assert metrics["parameters"]["recipe"] == "voc2007" and metrics["parameters"]["fc_units"] == 64
    assert metrics["parameters"]["scales"] == [1.0, 1.25] and metrics["parameters"]["flip"] is True
    assert metrics["best_checkpoint"]["epoch"] == 1 and metrics["parameters"]["precision"] == auto_precision
    expected_encoder = "random" if backbone_weights is None else Path(backbone_weights).name
    assert expected_encoder in metrics["encoder_weights"]

    assert set(FIGURES) <= set(metrics["figures"])
    for name in FIGURES:
        path = Path(metrics["figures"][name])
        assert path.parent == results, name
        assert path.read_bytes()[:8] == PNG_SIGNATURE, name
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            assert min(image.size) > 100, name
    assert Path(metrics["figures"]["class_mask"]).name == "horse.png"  # the reference's class

    executed = nbformat.read(out, as_version=4)
    outputs = [o for c in code_cells(executed) for o in c.get("outputs", [])]
    printed = "".join(o.get("text", "") for o in outputs)
    assert "quick mode" in printed and "frequency-weighted IoU" in printed
    for noise in ("cuInit", "absl::InitializeLog", "cudart_stub", "oneDNN custom operations"):
        assert noise not in printed, noise  # TensorFlow's start-up lines never reach a cell


def test_notebook_stops_at_once_on_a_bad_parameter(tmp_path):
    from papermill.exceptions import PapermillExecutionError

    with pytest.raises(PapermillExecutionError) as info:
        run_notebook(tmp_path, quick=True, data_root=str(SAMPLE), download=False,
                     results_dir=str(tmp_path / "results"), overrides={"variant": "fcn64s"})  # fmt: skip
    error = info.value
    assert error.ename == "ParameterError" and "Unknown variant 'fcn64s'" in error.evalue
    executed = nbformat.read(tmp_path / "executed.ipynb", as_version=4)
    failed = [c for c in code_cells(executed) if c.execution_count == error.exec_count]
    assert "plan_run(" in failed[0].source  # the cell right after the parameters
    assert not (tmp_path / "results").exists()


def test_notebook_runs_offline_on_the_shipped_model(tmp_path, monkeypatch):
    """No dataset, no encoder weights, no download: one line says so, and the shipped model
    segments the bundled street photos; nothing is trained or scored."""
    for name in ("VOC_ROOT", "CAMVID_ROOT", "FCN_BACKBONE_WEIGHTS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))  # no cached ImageNet weights either
    results = tmp_path / "results"
    out = run_notebook(tmp_path, download=False, results_dir=str(results))

    printed = "".join(o.get("text", "") for c in code_cells(nbformat.read(out, as_version=4)) for o in c.get("outputs", []))
    [line] = [line for line in printed.splitlines() if line.startswith("offline:")]
    assert "voc2007 not found" in line and "camvid-fcn8s" in line and "street photos" in line
    assert sorted(p.name for p in results.iterdir()) == ["sem_seg_inf.png", "training_curves.png"]
    with Image.open(results / "sem_seg_inf.png") as figure:
        assert min(figure.size) > 400
