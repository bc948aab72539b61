"""The model that ships with the package, ``camvid-fcn8s``: it loads by name in safe
mode with its class list and input contract, its prediction on a committed photo
is stable, the command lines take its name, and ``results/camvid/metrics.json`` is what
re-scoring it on the 233 CamVid test frames gives (with ``CAMVID_ROOT``)."""

import json
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from fcnseg import cli, load_fcn, predict_mask
from fcnseg.datasets import get_spec, load_image
from fcnseg.models.pretrained import MODELS_DIR, available_models, model_card, model_file, shipped_name, street_images

NAME = "camvid-fcn8s"
REPO = Path(__file__).resolve().parents[1]
# The class ids the shipped model predicts for the first street photo in float32 (tests/data/README.md).
EXPECTED = Path(__file__).parent / "data" / f"{NAME}_{street_images()[0].stem}.png"


@pytest.fixture(scope="module")
def model():
    return load_fcn(NAME, precision="auto")


def test_it_ships_within_the_size_limit_with_a_model_card():
    assert NAME in available_models()
    folder = MODELS_DIR / NAME
    assert model_file(NAME) == model_file(Path(NAME)) == folder / "model.keras"
    assert shipped_name(folder / "model.keras") == NAME
    assert (folder / "model.keras").stat().st_size <= 80 * 2**20
    card = (folder / "README.md").read_text()
    for words in ("CC BY-NC", "vgg16_hed_bsds500_notop.h5", "fcnseg-train --recipe camvid", "Pedestrian"):
        assert words in card, words


def test_it_loads_in_safe_mode_with_its_classes_and_input_contract():
    raw = keras.saving.load_model(model_file(NAME), compile=False, safe_mode=True)
    assert {w.dtype for w in raw.weights} == {"float16"}  # stored at half size
    card = model_card(NAME)
    spec = get_spec(card["dataset"])
    assert card["dataset"] == "camvid" and card["classes"] == list(spec.classes)
    assert np.array_equal(card["colormap"], spec.colormap)
    assert raw.input_shape == (None, None, None, card["input"]["channels"]) == (None, None, None, 3)
    assert raw.output_shape == (None, None, None, len(card["classes"]))
    assert card["input"]["range"] == [0, 255] and card["input"]["order"] == "RGB"
    loaded = load_fcn(NAME)
    assert {w.dtype for w in loaded.weights} == {"float32"}


def test_its_prediction_on_a_committed_photo_is_stable(model):
    photo = street_images()[0]
    mask = predict_mask(model, load_image(photo))
    expected = np.asarray(Image.open(EXPECTED))
    assert mask.shape == expected.shape == (540, 960)
    # float32 on AVX2 CPUs, bfloat16 where `auto` picks it: a few boundary pixels may differ.
    assert (mask == expected).mean() >= 0.98
    assert len(np.unique(expected)) >= 4  # a real street scene, not one class everywhere


def test_predict_cli_takes_its_name(tmp_path):
    photos = street_images()[:2]
    assert cli.main_predict([NAME, *map(str, photos), "--out", str(tmp_path), "--quiet"]) == 0
    for photo in photos:
        with Image.open(tmp_path / "overlays" / f"{photo.stem}.png") as overlay:
            assert overlay.size == (960, 540)
    assert len(list(tmp_path.rglob("*.png"))) == 6  # mask, colour mask and overlay of each


def test_results_metrics_are_a_rescoring_of_it_on_camvid_test(camvid_root):
    recorded = json.loads((REPO / "results" / "camvid" / "metrics.json").read_text())
    assert recorded["parameters"]["checkpoint"].endswith(f"models/{NAME}/model.keras")
    assert recorded["split"] == "test" and recorded["num_images"] == 233
    assert recorded["parameters"]["scales"] == [1.0] and not recorded["parameters"]["flip"]  # single pass
    scores = cli.run_evaluate([NAME, "--dataset", "camvid", "--root", str(camvid_root), "--split", "test"])
    assert scores["num_images"] == 233
    # The record was scored in float32; bfloat16, where `auto` picks it, moves mean IoU by about 1e-3.
    assert scores["mean_iou"] == pytest.approx(recorded["mean_iou"], abs=0.003)
    assert scores["pixel_accuracy"] == pytest.approx(recorded["pixel_accuracy"], abs=0.003)


def test_save_pretrained_packages_a_run_with_float16_weights(tmp_path):
    from fcnseg.models.fcn import build_fcn, save_fcn
    from fcnseg.training.record import save_pretrained

    run = tmp_path / "run"
    model = build_fcn("fcn8s", num_classes=11, fc_units=16, backbone_weights=None)
    save_fcn(model, run / "best.keras")
    (run / "metrics.json").write_text(json.dumps({"mean_iou": 0.25, "parameters": {"recipe": "camvid"}}))
    (run / "stage1").mkdir()
    for history in ("stage1/history.csv", "history.csv"):
        (run / history).write_text("epoch,loss\n0,1.0\n")
    folder = save_pretrained(run, tmp_path / "my-model", card={"dataset": "camvid"})
    assert json.loads((folder / "metrics.json").read_text()) == {
        "mean_iou": 0.25, "parameters": {"recipe": "camvid"}, "card": {"dataset": "camvid"}}
    assert (folder / "stage1" / "history.csv").is_file() and (folder / "history.csv").is_file()
    assert (folder / "model.keras").stat().st_size < 0.6 * (run / "best.keras").stat().st_size  # half-size weights
    image = np.random.default_rng(0).uniform(0, 255, (1, 64, 96, 3)).astype("float32")
    shipped = load_fcn(folder / "model.keras")
    assert shipped.get_layer("fc7").kernel.dtype == "float32"  # float16 on disk only
    np.testing.assert_allclose(shipped(image), model(image), rtol=0.02, atol=0.02)

