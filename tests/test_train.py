"""Tests for fcnseg.training.loop and fcnseg.files: short real training runs on CamVid frames
(64x96, batch 2, three batches per epoch) with the real VGG16 weights."""

import csv
import importlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from fcnseg.cli import run_evaluate as evaluate_run
from fcnseg.cli import run_train as run
from fcnseg.datasets import load_image, load_mask, read_split
from fcnseg.models.fcn import build_fcn, load_fcn
from fcnseg.files import atomic_path, write_json
from fcnseg.datasets.pipeline import make_dataset
from fcnseg.inference.predict import predict_logits, predict_mask
from fcnseg.models.precision import set_precision
from fcnseg.training.loop import train

import reference

REPO = Path(__file__).resolve().parent.parent
SIZE = (64, 96)


def camvid(root, split, batches, **kwargs):
    return make_dataset(root, split, dataset="camvid", image_size=SIZE, batch_size=2, **kwargs).take(batches)


def fcn(weights, variant="fcn32s", fc_units=64, frozen_blocks=5, **kwargs):
    """A function building a small FCN for CamVid (what train() takes). The encoder is frozen
    (only fc6, fc7 and the decoder learn): these tests check the training loop, and a frozen
    encoder halves the cost of each run (the command-line test trains every layer)."""
    return lambda: build_fcn(variant, num_classes=11, fc_units=fc_units, backbone_weights=weights,
                             frozen_blocks=frozen_blocks, **kwargs)  # fmt: skip


def history_rows(run_dir):
    with open(run_dir / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


def history_epochs(run_dir):
    return [int(row["epoch"]) for row in history_rows(run_dir)]


def logged(run_dir, column):
    return [float(row[column]) for row in history_rows(run_dir)]


@pytest.fixture(scope="module")
def good_run(camvid_root, vgg_weights, tmp_path_factory):
    """Three epochs of FCN-32s with Adam 1e-3 on three batches of CamVid frames."""
    keras.utils.set_random_seed(0)
    run_dir = tmp_path_factory.mktemp("good_run")
    started = time.perf_counter()
    history = train(
        fcn(vgg_weights), camvid(camvid_root, "train", 3), camvid(camvid_root, "val", 1),
        epochs=3, learning_rate=1e-3, schedule="constant", checkpoint_dir=run_dir, verbose=0,
    )  # fmt: skip
    history.wall_seconds = time.perf_counter() - started
    return history, run_dir


def test_training_lowers_the_loss_and_saves_the_best_model(good_run):
    history, run_dir = good_run
    losses = history.history["loss"]
    assert len(losses) == 3 and all(np.isfinite(losses))
    assert losses[-1] < losses[0]

    assert sorted(p.name for p in run_dir.iterdir()) == ["best.json", "best.keras", "history.csv"]  # no backup/temp
    assert history_epochs(run_dir) == [0, 1, 2]
    np.testing.assert_allclose(logged(run_dir, "loss"), losses, rtol=1e-6)
    record = json.loads((run_dir / "best.json").read_text())
    assert record["val_mean_iou"] == pytest.approx(max(history.history["val_mean_iou"]))
    assert record["epoch"] == 1 + int(np.argmax(history.history["val_mean_iou"]))

    model = load_fcn(run_dir / "best.keras")
    assert model.predict_on_batch(np.zeros((1, 33, 47, 3), "float32")).shape == (1, 33, 47, 11)


def test_history_csv_records_the_rate_and_the_time_of_each_epoch(good_run):
    history, run_dir = good_run
    np.testing.assert_allclose(logged(run_dir, "learning_rate"), [1e-3] * 3, rtol=1e-6)  # schedule="constant"
    seconds = logged(run_dir, "epoch_seconds")
    assert len(seconds) == 3 and all(s > 0 for s in seconds)
    assert sum(seconds) <= history.wall_seconds  # each epoch's own time, within the run's


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


# ---------------------------------------------------------------- options


def test_poly_schedule_decays_the_logged_rate_as_polynomial_decay_says(camvid_root, vgg_weights, tmp_path):
    lr, epochs, steps = 1e-3, 3, 2
    train(fcn(vgg_weights, fc_units=16), camvid(camvid_root, "train", steps), epochs=epochs,
          learning_rate=lr, schedule="poly", checkpoint_dir=tmp_path, verbose=0)  # fmt: skip
    # DeepLab's poly rule over all the run's steps, to 1/1000 of the rate, at each epoch's end.
    end, total = lr * 1e-3, epochs * steps
    expected = [(lr - end) * (1 - steps * (e + 1) / total) ** 0.9 + end for e in range(epochs)]
    np.testing.assert_allclose(logged(tmp_path, "learning_rate"), expected, rtol=1e-5)


def test_poly_schedule_needs_a_known_number_of_steps(camvid_root, tmp_path):
    unknown = camvid(camvid_root, "train", 1).filter(lambda images, masks: True)  # cardinality unknown
    with pytest.raises(ValueError, match=r"schedule='poly' needs the number of training steps"):
        train(lambda: build_fcn("fcn32s", num_classes=11, fc_units=16, backbone_weights=None), unknown,
              schedule="poly", checkpoint_dir=tmp_path, verbose=0)  # fmt: skip


def plateau_rates(scores, lr, *, factor=0.5, patience=3, min_delta=1e-4, min_lr=1e-7):
    """The rate of each epoch and the rate after the last one, by the rule of ReduceLROnPlateau
    on a score to maximize: after `patience` epochs without a gain of `min_delta` over the best
    score, the rate is multiplied by `factor` (not below `min_lr`) and the count starts again."""
    rates, best, wait = [], None, 0
    for score in scores:
        rates.append(lr)
        if best is None or score - min_delta > best:
            best, wait = score, 0
            continue
        wait += 1
        if wait >= patience and lr > min_lr:
            lr, wait = max(lr * factor, min_lr), 0
    return rates, lr


def test_plateau_halves_the_rate_when_val_mean_iou_stalls(camvid_root, vgg_weights, tmp_path):
    lr = 4e-7  # too small to move the validation score much, large enough to be halved (the floor is 1e-7)
    history = train(fcn(vgg_weights, fc_units=16), camvid(camvid_root, "train", 1),
                    camvid(camvid_root, "val", 1), epochs=7, learning_rate=lr, checkpoint_dir=tmp_path, verbose=0)
    rates, final = plateau_rates(history.history["val_mean_iou"], lr)
    assert final < lr, f"the score never stalled for 3 epochs: {history.history['val_mean_iou']}"
    np.testing.assert_allclose(logged(tmp_path, "learning_rate"), rates, rtol=1e-5)  # the rate each epoch ran at
    assert float(keras.ops.convert_to_numpy(history.model.optimizer.learning_rate)) == pytest.approx(final, rel=1e-5)


@pytest.fixture(scope="module")
def options_run(camvid_root, vgg_weights, tmp_path_factory):
    """Two epochs with a user's optimizer (SGD) and an XLA-compiled train step."""
    keras.utils.set_random_seed(0)
    run_dir = tmp_path_factory.mktemp("options_run")
    history = train(
        fcn(vgg_weights, fc_units=16), camvid(camvid_root, "train", 2), camvid(camvid_root, "val", 1),
        epochs=2, learning_rate=1e-4, schedule="constant", optimizer=lambda: keras.optimizers.SGD(2e-3, momentum=0.9),
        jit_compile=True, checkpoint_dir=run_dir, verbose=0,
    )  # fmt: skip
    return history, run_dir


def test_a_users_optimizer_replaces_adam(options_run):
    history, run_dir = options_run
    optimizer = history.model.optimizer
    assert isinstance(optimizer, keras.optimizers.SGD) and optimizer.momentum == 0.9
    assert int(optimizer.iterations) == 4  # it took every step
    np.testing.assert_allclose(logged(run_dir, "learning_rate"), [2e-3] * 2, rtol=1e-6)  # its rate, not learning_rate=
    assert np.isfinite(history.history["loss"]).all()


def tensorboard_scalars(folder):
    """{tag: [steps]} of every event file under `folder`."""
    scalars = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                scalars.setdefault(value.tag, []).append(event.step)
    return scalars


def test_tensorboard_writes_event_files_for_training_and_validation(camvid_root, vgg_weights, tmp_path):
    kwargs = dict(epochs=2, schedule="constant", tensorboard=True, checkpoint_dir=tmp_path, verbose=0)
    train_ds, val_ds = camvid(camvid_root, "train", 1), camvid(camvid_root, "val", 1)
    if importlib.util.find_spec("tensorboard") is None:  # TensorFlow no longer brings it
        with pytest.raises(ModuleNotFoundError, match="pip install tensorboard"):
            train(fcn(vgg_weights, fc_units=16), train_ds, val_ds, **kwargs)
        assert not (tmp_path / "history.csv").exists()  # refused before training, not after an epoch
        return
    train(fcn(vgg_weights, fc_units=16), train_ds, val_ds, **kwargs)
    train_scalars = tensorboard_scalars(tmp_path / "logs" / "train")
    assert train_scalars["epoch_loss"] == [0, 1] and train_scalars["epoch_mean_iou"] == [0, 1]
    assert tensorboard_scalars(tmp_path / "logs" / "validation")["epoch_mean_iou"] == [0, 1]


def test_jit_compile_reaches_the_model(options_run):
    history, _ = options_run
    assert history.model.jit_compile is True  # Keras turns it off (with a warning) where XLA cannot run the model
    assert np.isfinite(history.history["loss"]).all()


DISTRIBUTED = """
import json, os, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from fcnseg.models.fcn import build_fcn
from fcnseg.datasets.pipeline import make_dataset
from fcnseg.training.loop import train

out = sys.argv[1]
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
ds = make_dataset(os.environ["CAMVID_ROOT"], "train", dataset="camvid", image_size=(64, 96), batch_size=2).take(1)
build = lambda: build_fcn("fcn32s", num_classes=11, fc_units=64, backbone_weights=os.environ["FCN_BACKBONE_WEIGHTS"],
                          frozen_blocks=5)  # only fc6, fc7 and the decoder train: a cheaper graph
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


# ---------------------------------------------------------------- the command line


def median_frequency(root, power):
    """Median-frequency weights computed here: pixel counts of the training masks at the training
    size, (median(f) / f_c) ** power over the classes present, 0 for the others."""
    counts = np.zeros(11, np.int64)
    for _, masks in make_dataset(root, "train", dataset="camvid", image_size=SIZE, batch_size=4):
        labels = masks.numpy().ravel()
        counts += np.bincount(labels[labels != 255], minlength=11)
    freq = counts / counts.sum()
    present = freq > 0
    return np.where(present, (np.median(freq[present]) / np.where(present, freq, 1)) ** power, 0.0)


def assert_pixels_weigh(train_ds, class_weights):
    """Each pixel of a batch of `train_ds` (what fit was given) weighs its class's weight, void 0."""
    _, masks, weights = (t.numpy() for t in next(iter(train_ds)))
    expected = np.where(masks == 255, 0.0, np.asarray(class_weights)[np.where(masks == 255, 0, masks)])
    assert np.unique(expected[masks != 255]).size > 1  # several classes, so the weights are told apart
    np.testing.assert_allclose(weights, expected, rtol=1e-5)


@pytest.fixture
def float32_afterwards():
    """Sets the float32 policy back after a test that may leave another one."""
    yield
    set_precision("float32")


def test_cli_trains_both_stages_scores_and_continues_a_finished_first_stage(small_camvid, vgg_weights, tmp_path,
                                                                           monkeypatch, float32_afterwards,
                                                                           auto_precision):
    """`fcnseg-train --recipe camvid` end to end on a few real CamVid frames (under --strategy
    mirrored and the default --precision auto: whatever this machine gets, float32 or mixed):
    the first stage into <out>/stage1, the second from its best epoch into <out>. Then, in
    float32, a run folder whose first stage is done trains the second stage only. The class
    weights checked on what fit was given, the scores against predictions computed here at the
    evaluation options asked for."""
    root = small_camvid
    expected_precision = auto_precision
    calls = []  # (strategy given, the model's strategy, the training dataset, the starting score_fr kernel)
    module = importlib.import_module("fcnseg.training.loop")

    def recording_train(model, train_ds, *args, strategy=None, **kwargs):
        started = []

        def build():  # the CLI passes a function that builds (or loads) the model under the strategy
            built = model()
            started.append(built.get_layer("score_fr").get_weights()[0].copy())
            return built

        history = train(build, train_ds, *args, strategy=strategy, **kwargs)
        calls.append((strategy, history.model.distribute_strategy, train_ds, *started))
        return history

    monkeypatch.setattr(module, "train", recording_train)  # the CLI imports fcnseg.training.loop's train when it runs
    common = ["--recipe", "camvid", "--root", str(root), "--image-size", "64", "96", "--batch-size", "2",
              "--epochs", "1", "--backbone-weights", str(vgg_weights), "--input-size", "90", "120"]  # fmt: skip
    out = tmp_path / "run"
    first = run([*common, "--fc-units", "64", "--class-weights", "median", "--strategy", "mirrored",
                 "--color-jitter", "0.3", "--scale-range", "0.75", "1.5", "--out", str(out)])  # fmt: skip
    assert len(calls) == 2  # two stages
    for strategy, used, _, _ in calls:
        assert isinstance(strategy, tf.distribute.MirroredStrategy) and used is strategy  # the model lived under it
    assert strategy.num_replicas_in_sync == max(1, len(tf.config.list_physical_devices("GPU")))
    stage1 = load_fcn(out / "stage1" / "best.keras")  # the second stage started from the first's best epoch
    np.testing.assert_array_equal(calls[1][3], stage1.get_layer("score_fr").get_weights()[0])
    assert len(history_rows(out / "stage1")) == 1 and len(history_rows(out)) == 1
    parameters = first["parameters"]
    assert parameters["recipe"] == "camvid" and parameters["strategy"] == "mirrored"
    assert parameters["first_stage"] == {"learning_rate": 1e-4, "seed": 0}  # all else as the second stage's
    assert (parameters["learning_rate"], parameters["seed"], parameters["epochs"]) == (5e-5, 1, 1)
    assert parameters["fc_units"] == 64 and parameters["image_size"] == [64, 96] and parameters["skip_scales"] == [1.0, 1.0]
    assert parameters["class_weights"] == "median" and parameters["input_size"] == [90, 120]
    median = median_frequency(root, power=1.0)
    for _, _, train_ds, _ in calls:
        assert_pixels_weigh(train_ds, median)
    assert first["num_images"] == 2 and first["split"] == "test" and 0 <= first["mean_iou"] <= 1
    assert first["encoder_weights"].startswith(vgg_weights.name) and first["best_checkpoint"]["epoch"] == 1
    assert json.loads((out / "metrics.json").read_text())["mean_iou"] == first["mean_iou"]
    stage_seconds = sum(logged(out / "stage1", "epoch_seconds")) + sum(logged(out, "epoch_seconds"))
    assert first["train_seconds"] == pytest.approx(stage_seconds, abs=0.1) and stage_seconds > 0  # both stages
    assert parameters["precision"] == expected_precision
    trained = load_fcn(out / "best.keras")  # the layers keep the policy they were trained under
    assert trained.get_layer("fc7").dtype_policy.name == expected_precision
    assert trained.get_layer("logits").compute_dtype == "float32"
    frame = load_image(read_split(root, "test", "camvid")[0].image_path)
    logits = predict_logits(trained, frame[None], input_size=(90, 120))
    assert logits.dtype == np.float32 and logits.shape == (1, *frame.shape[:2], 11) and np.isfinite(logits).all()
    np.testing.assert_array_equal(predict_mask(trained, frame, input_size=(90, 120)), logits[0].argmax(-1))

    # A run folder whose first stage is done (its best epoch with the score kernel re-drawn,
    # `reference.spread_classes`: whatever one epoch taught it on this CPU and precision, its maps
    # then hold several classes, so that the test-time options below change pixels and dropping
    # one of them is caught): only the second stage trains, from that best epoch.
    again = tmp_path / "again"
    shutil.copytree(out / "stage1", again / "stage1")
    spread = reference.spread_classes(stage1)
    spread.save(again / "stage1" / "best.keras")
    stage2 = run([*common, "--class-weights", "sqrt_median", "--precision", "float32", "--flip", "--out", str(again)])
    assert len(calls) == 3  # the first stage was not run again
    np.testing.assert_array_equal(calls[2][3], spread.get_layer("score_fr").get_weights()[0])
    assert stage2["parameters"]["class_weights"] == "sqrt_median"
    # its time counts the first stage's epochs, trained by the earlier process, as well
    assert stage2["train_seconds"] == pytest.approx(sum(logged(again / "stage1", "epoch_seconds"))
                                                    + sum(logged(again, "epoch_seconds")), abs=0.1)
    assert_pixels_weigh(calls[-1][2], np.sqrt(median))
    best = again / "best.keras"
    model = load_fcn(best)
    assert model.get_layer("fc6").filters == 64  # the first stage's model, not a fresh 1024-wide one
    assert stage2["parameters"]["flip"] is True and stage2["num_images"] == 2

    # The scores are those of the model at --input-size with flip averaging, computed here.
    samples = read_split(root, "test", "camvid")
    images = np.stack([load_image(s.image_path) for s in samples])
    masks = [load_mask(s.mask_path, "camvid") for s in samples]

    def reference_cm(**options):
        return reference.confusion(masks, reference.tta_logits(model, images, input_size=(90, 120), **options)
                                   .argmax(-1), 11)  # fmt: skip
    plain, flipped = reference_cm(), reference_cm(flip=True)
    tolerance = 0.001 * plain.sum()
    assert reference.pixels_apart(stage2["confusion_matrix"], flipped) <= tolerance
    assert reference.pixels_apart(flipped, plain) > 2 * tolerance  # the flip shows: leaving it out is caught

    # `fcnseg-evaluate` rescores a saved model: the same figures as the training run's own.
    # At the policy it was trained at (`auto` may pick another on this CPU, which moves some pixels).
    common_eval = [str(best), "--dataset", "camvid", "--root", str(root), "--split", "test", "--input-size", "90", "120",
                   "--precision", "float32"]  # fmt: skip
    scores = evaluate_run([*common_eval, "--flip", "--out", str(tmp_path / "scores.json")])
    assert scores["mean_iou"] == pytest.approx(stage2["mean_iou"], abs=1e-6)
    assert scores["confusion_matrix"] == stage2["confusion_matrix"]
    saved = json.loads((tmp_path / "scores.json").read_text())
    assert saved["flip"] is True and saved["input_size"] == [90, 120] and saved["split"] == "test"
    # Multi-scale averaging from the command line: the mean of the logits at 90x120 and 112x150.
    multi = evaluate_run([*common_eval, "--scales", "1", "1.25"])
    assert multi["scales"] == (1.0, 1.25)
    scaled = reference_cm(scales=(1.0, 1.25))
    assert reference.pixels_apart(multi["confusion_matrix"], scaled) <= tolerance
    assert reference.pixels_apart(scaled, plain) > 2 * tolerance


# ---------------------------------------------------------------- atomic files


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


def test_set_precision_auto_picks_what_the_machine_has(auto_precision):
    expected = auto_precision
    try:
        assert set_precision("auto") == expected
        assert keras.mixed_precision.global_policy().name == expected
        assert set_precision("float32") == keras.mixed_precision.global_policy().name == "float32"
        with pytest.raises(ValueError, match="Unknown precision 'float8'"):
            set_precision("float8")
    finally:
        set_precision("float32")
