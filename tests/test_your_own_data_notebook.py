"""Tests of the notebook ``notebooks/your_own_data.ipynb``: your own folder of images and masks,
`camvid-fcn8s` fine-tuned onto its classes.

- Its structure (fast): a clean file, the papermill ``parameters`` cell first, every parameter
  forwarded to `plan_run`, no code defined in it, the package functions it is about called.
- The whole notebook executed with papermill in quick mode (1 epoch of 2 batches at 64x64) on a
  folder made here from 6 train and 3 val CamVid frames, downscaled to 96x128, with binary masks
  of 0 (not road) and 255 (road) and a ``classes.txt``: it runs to the end, prints both classes'
  pixel shares, writes its figures as PNGs and a mean IoU in [0, 1] to ``metrics.json``.
- The same folder without ``mask_values`` (0/255 read as class ids): refused, naming
  ``mask_values={0: 0, 255: 1}``.

Needs CamVid (``CAMVID_ROOT``; CI: ../shared), else skipped. Nothing is downloaded: the
notebook starts from the shipped `camvid-fcn8s`.
"""

import ast
import json
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest
from PIL import Image

from fcnseg.datasets import check_dataset
from fcnseg.datasets.folders import own_dataset

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "your_own_data.ipynb"
PARAMETERS = ("data_root", "classes", "mask_values", "init_from", "epochs", "image_size", "quick", "overrides",
              "results_dir")  # fmt: skip
FIGURES = ("masks", "training_curves", "iou_per_class", "predictions")  # the PNGs the notebook saves
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ROAD = 3  # CamVid's class id of Road (fcnseg.datasets.camvid.CAMVID_CLASSES)
SIZE = (128, 96)  # width, height: CamVid's 480x360 frames downscaled 3.75 times


def code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def printed(nb) -> str:
    return "".join(o.get("text", "") for c in code_cells(nb) for o in c.get("outputs", []))


@pytest.fixture(scope="module")
def notebook():
    return nbformat.read(NOTEBOOK, as_version=4)


# =============================================================================== structure


def test_notebook_is_clean(notebook):
    nbformat.validate(notebook)
    for cell in code_cells(notebook):
        assert cell.outputs == [] and cell.execution_count is None, "commit the notebook without outputs"
    assert notebook.metadata["kernelspec"]["name"] == "python3"


def test_parameters_come_first_and_all_reach_plan_run(notebook):
    first, second = code_cells(notebook)[:2]
    assert "parameters" in first.metadata.get("tags", []), "the first code cell must be tagged 'parameters'"
    assert tuple(t.id for node in ast.parse(first.source).body for t in node.targets) == PARAMETERS
    defaults = {}
    exec(first.source, {}, defaults)
    assert defaults["data_root"] is None and defaults["init_from"] == "camvid-fcn8s" and defaults["quick"] is False
    assert "plan_run(" in second.source, "the cell after the parameters checks them"
    assert second.source.index("quiet_tensorflow()") < second.source.index("from fcnseg.runner")
    for name in PARAMETERS:
        assert f"{name}={name}" in second.source or f'"{name}": {name}' in second.source or f"**{name}" in second.source, name


def test_notebook_only_calls_the_package(notebook):
    for cell in code_cells(notebook):
        tree = ast.parse("\n".join(line for line in cell.source.splitlines() if not line.startswith("%")))
        defined = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.Lambda))]
        assert not defined, f"define helpers in src/, not in the notebook:\n{cell.source}"
    text = "\n".join(c.source for c in notebook.cells)
    assert "../shared" not in text and "/work/" not in text, "no machine-specific paths"
    code = "\n".join(c.source for c in code_cells(notebook))
    for call in ("show_masks(", "describe_dataset(", "check_dataset(", "plan.build_model(", "plan.train(",
                 "plan.evaluate(", "plot_iou_per_class(", "predict_mask(", "show_predictions("):  # fmt: skip
        assert call in code, call
    for name in FIGURES:
        assert f'plan.results_dir / "{name}.png"' in code, name


# =============================================================================== a folder of 0/255 road masks


@pytest.fixture(scope="module")
def roads(camvid_root, tmp_path_factory) -> Path:
    """``roads/{train,val}/{images,masks}``: 6 and 3 CamVid frames downscaled to 96x128 (RGB PNGs),
    masks of 255 where CamVid says Road and 0 elsewhere (void included), and ``classes.txt``."""
    root = tmp_path_factory.mktemp("data") / "roads"
    frames = iter(sorted((camvid_root / "train").glob("*.png")))  # each frame in one split
    for split, count in (("train", 6), ("val", 3)):
        (root / split / "images").mkdir(parents=True)
        (root / split / "masks").mkdir(parents=True)
        for _, frame in zip(range(count), frames):
            with Image.open(frame) as image:
                image.convert("RGB").resize(SIZE, Image.Resampling.BILINEAR).save(root / split / "images" / frame.name)
            with Image.open(camvid_root / "trainannot" / frame.name) as annotation:
                road = np.array(annotation.resize(SIZE, Image.Resampling.NEAREST)) == ROAD
            assert 0.05 < road.mean() < 0.95, frame  # both classes in every frame
            Image.fromarray(road.astype(np.uint8) * 255).save(root / split / "masks" / frame.name)
    (root / "classes.txt").write_text("background\nroad\n")
    return root


def test_0_255_masks_without_mask_values_are_refused_with_the_argument_to_pass(roads):
    """What the notebook's check cell does with ``mask_values=None``: the folder's classes from
    classes.txt, 0 and 255 read as class ids (255: void), so 'road' would never be trained on."""
    spec = own_dataset(roads)  # plan_run's spec for {"dataset": "folder"} without classes or mask_values
    assert spec.classes == ("background", "road") and spec.mask_format == "index"
    with pytest.raises(ValueError) as info:
        check_dataset(roads, "train", dataset=spec)
    message = str(info.value)
    assert "['road'] never appear" in message and "mask_values={0: 0, 255: 1}" in message


@pytest.fixture(scope="module")
def executed(roads, tmp_path_factory, told_precision):
    """The notebook run by papermill in quick mode on `roads`, from an empty folder: ``(notebook, results)``."""
    papermill = pytest.importorskip("papermill")
    tmp = tmp_path_factory.mktemp("your_own_data")
    results, cwd = tmp / "results", tmp / "cwd"
    cwd.mkdir()
    out = tmp / "executed.ipynb"
    papermill.execute_notebook(
        str(NOTEBOOK), str(out), cwd=str(cwd), kernel_name="python3", progress_bar=False, execution_timeout=600,
        parameters=dict(data_root=str(roads), mask_values={0: 0, 255: 1}, quick=True, epochs=1, image_size=[64, 64],
                        results_dir=str(results), overrides=told_precision),
    )  # fmt: skip
    assert not any(cwd.iterdir()), "everything the notebook writes goes under results_dir"
    return nbformat.read(out, as_version=4), results


def test_notebook_runs_to_the_end_and_describes_both_classes(executed):
    nb, results = executed
    cells = code_cells(nb)
    assert all(c.execution_count is not None for c in cells), "every cell ran"
    assert not [o for c in cells for o in c.outputs if o.output_type == "error"]
    text = printed(nb)
    for name in ("background", "road"):  # describe_dataset's rows: a class and its share of the pixels
        shares = re.findall(rf"^\s+{name}\s+(\d+\.\d)%$", text, flags=re.M)
        assert len(shares) == 2 and all(0 < float(s) < 100 for s in shares), (name, shares)  # train and val
    assert re.findall(r"^\s+void\s+0\.0%$", text, flags=re.M), "0/255 masks read through mask_values: no void"
    assert "the masks of every split read as classes: background, road" in text
    assert "FCN-8s from camvid-fcn8s: 2 classes" in text


def test_notebook_scores_and_saves_its_figures(executed):
    nb, results = executed
    metrics = json.loads((results / "metrics.json").read_text())
    assert isinstance(metrics["mean_iou"], float) and 0.0 <= metrics["mean_iou"] <= 1.0
    assert f"mean IoU {metrics['mean_iou']:.3f}" in printed(nb)
    assert set(metrics["iou_per_class"]) == {"background", "road"} and metrics["num_images"] == 3
    assert metrics["parameters"]["init_from"].endswith("model.keras") and metrics["smoke_test"] is True
    assert metrics["parameters"]["mask_values"] == [[0, 0], [255, 1]]
    assert set(metrics["figures"]) == set(FIGURES)
    for name in FIGURES:
        path = Path(metrics["figures"][name])
        assert path == results / f"{name}.png" and path.read_bytes()[:8] == PNG_SIGNATURE, name
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            assert min(image.size) > 100, name
