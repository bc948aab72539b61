"""Tests for fcnseg.train and fcnseg.files: short real training runs on CamVid frames
(64x96, batch 2, three batches per epoch) with the real VGG16 weights."""

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from fcnseg.cli import run_evaluate as evaluate_run
from fcnseg.cli import run_train as run
from fcnseg.evaluate import evaluate
from fcnseg.fcn import build_fcn, load_fcn
from fcnseg.files import atomic_path, write_json
from fcnseg.pipeline import make_dataset
from fcnseg.train import train

REPO = Path(__file__).resolve().parent.parent
SIZE = (64, 96)


def camvid(root, split, batches, **kwargs):
    return make_dataset(root, split, dataset="camvid", image_size=SIZE, batch_size=2, **kwargs).take(batches)


def fcn(weights, variant="fcn32s", **kwargs):
    """A function building a small FCN for CamVid (what train() takes)."""
    return lambda: build_fcn(variant, num_classes=11, fc_units=64, backbone_weights=weights, **kwargs)


def history_epochs(run_dir):
    with open(run_dir / "history.csv", newline="") as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


@pytest.fixture(scope="module")
def good_run(camvid_root, vgg_weights, tmp_path_factory):
    """Three epochs of FCN-32s with Adam 1e-3 on three batches of CamVid frames."""
    keras.utils.set_random_seed(0)
    run_dir = tmp_path_factory.mktemp("good_run")
    history = train(
        fcn(vgg_weights), camvid(camvid_root, "train", 3), camvid(camvid_root, "val", 1),
        epochs=3, learning_rate=1e-3, schedule="constant", checkpoint_dir=run_dir, verbose=0,
    )  # fmt: skip
    return history, run_dir


def test_training_lowers_the_loss_and_saves_the_best_model(good_run):
    history, run_dir = good_run
    losses = history.history["loss"]
    assert len(losses) == 3 and all(np.isfinite(losses))
    assert losses[-1] < losses[0]

    assert sorted(p.name for p in run_dir.iterdir()) == ["best.json", "best.keras", "history.csv"]  # no backup/temp
    assert history_epochs(run_dir) == [0, 1, 2]
    record = json.loads((run_dir / "best.json").read_text())
    assert record["val_mean_iou"] == pytest.approx(max(history.history["val_mean_iou"]))
    assert record["epoch"] == 1 + int(np.argmax(history.history["val_mean_iou"]))

    model = load_fcn(run_dir / "best.keras")
    assert model.predict_on_batch(np.zeros((1, 33, 47, 3), "float32")).shape == (1, 33, 47, 11)


def test_bce_training_runs(camvid_root, vgg_weights, tmp_path):
    history = train(
        fcn(vgg_weights, decoder="notebook"), camvid(camvid_root, "train", 2),
        epochs=1, loss="bce", learning_rate=1e-3, checkpoint_dir=tmp_path, verbose=0,
    )  # fmt: skip
    assert np.isfinite(history.history["loss"]).all()
    assert 0 <= history.history["mean_iou"][0] <= 1  # without val_ds, the training mean IoU picks the best
    assert load_fcn(tmp_path / "best.keras").output_shape == (None, None, None, 11)


class Crash(keras.callbacks.Callback):
    """Stands in for a killed process: raises when epoch 3 (index 2) begins."""

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 2:
            raise RuntimeError("simulated crash")


def test_interrupted_training_resumes_where_it_stopped(camvid_root, vgg_weights, tmp_path):
    train_ds = camvid(camvid_root, "train", 2)
    kwargs = dict(epochs=4, learning_rate=1e-3, schedule="constant", checkpoint_dir=tmp_path, verbose=0)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(fcn(vgg_weights), train_ds, callbacks=[Crash()], **kwargs)
    assert history_epochs(tmp_path) == [0, 1]
    assert any((tmp_path / "backup").iterdir())

    history = train(fcn(vgg_weights), train_ds, **kwargs)
    assert history.epoch == [2, 3]  # only the missing epochs ran
    assert history_epochs(tmp_path) == [0, 1, 2, 3]  # one row per epoch, none twice
    assert not (tmp_path / "backup").exists()  # removed once training finished


def test_nan_loss_raises_and_keeps_the_best_checkpoint(good_run, camvid_root, vgg_weights, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(good_run[1], run_dir)
    best_bytes = (run_dir / "best.keras").read_bytes()
    best_record = (run_dir / "best.json").read_text()

    with pytest.raises(FloatingPointError, match=r"NaN at epoch 1, batch \d+.*best.keras is intact"):
        train(fcn(vgg_weights), camvid(camvid_root, "train", 3), camvid(camvid_root, "val", 1),
              epochs=2, learning_rate=1e30, checkpoint_dir=run_dir, verbose=0)

    assert (run_dir / "best.keras").read_bytes() == best_bytes
    assert (run_dir / "best.json").read_text() == best_record
    assert load_fcn(run_dir / "best.keras").count_params() > 0
    assert not list(run_dir.glob(".*tmp*"))


def test_a_fresh_run_does_not_inherit_an_old_record(camvid_root, vgg_weights, tmp_path):
    """A new run in a used folder keeps its own best model, however good the old record was."""
    write_json(tmp_path / "best.json", {"val_mean_iou": 1.0, "epoch": 7})
    (tmp_path / "best.keras").write_bytes(b"an older model")
    train(fcn(vgg_weights), camvid(camvid_root, "train", 1), camvid(camvid_root, "val", 1),
          epochs=1, checkpoint_dir=tmp_path, verbose=0)
    assert json.loads((tmp_path / "best.json").read_text())["epoch"] == 1
    assert load_fcn(tmp_path / "best.keras").count_params() > 0


class Diverge(keras.callbacks.Callback):
    """Makes training blow up in epoch 2 (index 1)."""

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            self.model.optimizer.learning_rate.assign(1e30)


def test_nan_in_a_later_epoch_leaves_the_last_good_epoch_to_resume_from(camvid_root, vgg_weights, tmp_path):
    train_ds, val_ds = camvid(camvid_root, "train", 2), camvid(camvid_root, "val", 1)
    kwargs = dict(learning_rate=1e-3, schedule="constant", checkpoint_dir=tmp_path, verbose=0)
    with pytest.raises(FloatingPointError, match=r"NaN at epoch 2, batch"):
        train(fcn(vgg_weights), train_ds, val_ds, epochs=3, callbacks=[Diverge()], **kwargs)
    assert history_epochs(tmp_path) == [0]  # no row for the broken epoch
    assert json.loads((tmp_path / "best.json").read_text())["epoch"] == 1

    # The backup still holds epoch 1's good weights: the rerun starts at epoch 2 with a finite loss.
    history = train(fcn(vgg_weights), train_ds, val_ds, epochs=2, **kwargs)
    assert history.epoch == [1] and np.isfinite(history.history["loss"]).all()
    assert history_epochs(tmp_path) == [0, 1]


DISTRIBUTED = """
import json, os, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from fcnseg.fcn import build_fcn
from fcnseg.pipeline import make_dataset
from fcnseg.train import train

out = sys.argv[1]
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
ds = make_dataset(os.environ["CAMVID_ROOT"], "train", dataset="camvid", image_size=(64, 96), batch_size=2).take(1)
build = lambda: build_fcn("fcn32s", num_classes=11, fc_units=64, backbone_weights=os.environ["FCN_BACKBONE_WEIGHTS"])
history = train(build, ds, epochs=1, strategy=strategy, checkpoint_dir=out + "/ok", verbose=0)
result = {"replicas": strategy.num_replicas_in_sync, "loss": history.history["loss"]}
try:
    train(build(), ds, epochs=1, strategy=strategy, checkpoint_dir=out + "/built", verbose=0)
except ValueError as e:
    result["error"] = str(e)
print("RESULT " + json.dumps(result))
"""


@pytest.fixture(scope="module")
def distributed(camvid_root, vgg_weights, tmp_path_factory):
    """Train a step under MirroredStrategy over two logical CPUs (set up before TF starts: a new process)."""
    out = tmp_path_factory.mktemp("distributed")
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "CAMVID_ROOT": str(camvid_root),
           "FCN_BACKBONE_WEIGHTS": str(vgg_weights), "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, "-c", DISTRIBUTED, str(out)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT "):]), out


def test_mirrored_strategy_trains_on_two_replicas(distributed):
    result, out = distributed
    assert result["replicas"] == 2
    assert np.isfinite(result["loss"]).all()
    assert (out / "ok" / "best.keras").is_file()


def test_model_built_outside_the_strategy_is_refused(distributed):
    result, _ = distributed
    assert "pass a function that builds the model" in result.get("error", "")


# ---------------------------------------------------------------- atomic files


def test_cli_trains_scores_and_continues_from_its_checkpoint(camvid_root, vgg_weights, tmp_path):
    """`fcnseg-train` end to end on a few real CamVid frames, then a second
    stage started from the first one's best checkpoint."""
    root = tmp_path / "camvid"
    for split, count in (("train", 4), ("val", 2), ("test", 2)):
        for folder in (split, f"{split}annot"):
            (root / folder).mkdir(parents=True)
            for path in sorted((camvid_root / folder).glob("*.png"))[:count]:
                (root / folder / path.name).symlink_to(path)
    common = ["--recipe", "camvid", "--root", str(root), "--image-size", "64", "96", "--batch-size", "2",
              "--epochs", "1", "--precision", "float32", "--backbone-weights", str(vgg_weights)]
    stage1 = run([*common, "--fc-units", "64", "--class-weights", "sqrt_median", "--color-jitter", "0.3",
                   "--scale-range", "0.75", "1.5", "--out", str(tmp_path / "stage1")])  # fmt: skip
    parameters = stage1["parameters"]
    assert parameters["recipe"] == "camvid" and parameters["class_weights"] == "sqrt_median"
    assert parameters["fc_units"] == 64 and parameters["image_size"] == [64, 96] and parameters["skip_scales"] == [1.0, 1.0]
    assert stage1["num_images"] == 2 and stage1["split"] == "test" and 0 <= stage1["mean_iou"] <= 1
    assert stage1["encoder_weights"].startswith(vgg_weights.name) and stage1["best_checkpoint"]["epoch"] == 1
    assert json.loads((tmp_path / "stage1" / "metrics.json").read_text())["mean_iou"] == stage1["mean_iou"]

    stage2 = run([*common, "--init-from", str(tmp_path / "stage1" / "best.keras"), "--eval-flip",
                   "--out", str(tmp_path / "stage2")])  # fmt: skip
    model = load_fcn(tmp_path / "stage2" / "best.keras")
    assert model.get_layer("fc6").filters == 64  # the first stage's model, not a fresh 4096-wide one
    assert stage2["parameters"]["flip"] and stage2["num_images"] == 2

    # `fcnseg-evaluate` rescores a saved model: the same figures as the training run's own.
    scores = evaluate_run([str(tmp_path / "stage2" / "best.keras"), "--dataset", "camvid", "--root", str(root),
                            "--split", "test", "--flip", "--out", str(tmp_path / "scores.json")])  # fmt: skip
    assert scores["mean_iou"] == pytest.approx(stage2["mean_iou"], abs=1e-6)
    assert scores["confusion_matrix"] == stage2["confusion_matrix"]
    saved = json.loads((tmp_path / "scores.json").read_text())
    assert saved["flip"] is True and saved["split"] == "test"
    # Multi-scale averaging from the command line is `evaluate(scales=...)`.
    multi = evaluate_run([str(tmp_path / "stage2" / "best.keras"), "--dataset", "camvid", "--root", str(root),
                           "--split", "test", "--scales", "1", "1.25"])  # fmt: skip
    direct = evaluate(model, root, "test", dataset="camvid", scales=(1.0, 1.25))
    assert multi["scales"] == [1.0, 1.25] and multi["confusion_matrix"] == direct["confusion_matrix"]


def test_atomic_path_replaces_only_on_success(tmp_path):
    target = tmp_path / "model.keras"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            assert tmp.parent == tmp_path and tmp.name.endswith(".keras") and tmp != target
            tmp.write_text("half-written")
            raise RuntimeError("crash while writing")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.keras"]  # no temporary file left

    with atomic_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["model.keras"]


def test_write_json_is_atomic(tmp_path):
    path = write_json(tmp_path / "sub" / "metrics.json", {"mean_iou": 0.5})
    assert json.loads(path.read_text()) == {"mean_iou": 0.5}
    with pytest.raises(ValueError):
        write_json(path, {"mean_iou": float("nan")})  # invalid JSON is never written
    assert json.loads(path.read_text()) == {"mean_iou": 0.5}
    assert [p.name for p in path.parent.iterdir()] == ["metrics.json"]


def test_set_precision_auto_picks_a_policy_this_machine_runs():
    from fcnseg.train import auto_precision, set_precision

    try:
        chosen = set_precision("auto")
        assert chosen == auto_precision() == keras.mixed_precision.global_policy().name
        cpu_has_bf16 = any(f in Path("/proc/cpuinfo").read_text() for f in ("avx512_bf16", "amx_bf16"))
        if not tf.config.list_physical_devices("GPU"):
            assert chosen == ("mixed_bfloat16" if cpu_has_bf16 else "float32")
        with pytest.raises(ValueError, match="Unknown precision 'float8'"):
            set_precision("float8")
    finally:
        set_precision("float32")
