"""Multi-worker training: two `fcnseg-train` worker processes on 127.0.0.1 under
`MultiWorkerMirroredStrategy` (TensorFlow's own collectives over gRPC) on a few
real CamVid frames, a worker killed mid-epoch and the run resumed, TF_CONFIG
errors, and mixed-precision loss scaling."""

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest

from fcnseg.cli import run_train as run
from fcnseg.datasets import load_image
from fcnseg.models.fcn import build_fcn, load_fcn
from fcnseg.training.distribute import TF_CONFIG_EXAMPLE, check_tf_config, make_strategy
from fcnseg.datasets.pipeline import make_dataset, resize_pair
from fcnseg.models.precision import set_precision
from fcnseg.training.loop import train

REPO = Path(__file__).resolve().parent.parent
RUN_FILES = ["best.json", "best.keras", "history.csv", "metrics.json"]
WORKER_TIMEOUT = 240  # seconds for one launch of both workers; a hung worker fails the test

# The real CLI entry point (`fcnseg.cli:main_train`), with probes added through the Python API:
# each worker records its step counts and final weights under PROBE_DIR, and the images
# its `fit` consumed at each step (seen by the train step itself, after tf.distribute
# split the global batch); with PAUSE_AT_EPOCH2 set it pauses after epoch 2's first step.
WORKER = """
import importlib, json, os, sys, time
from pathlib import Path
import keras, numpy as np, tensorflow as tf
cli = importlib.import_module("fcnseg.cli")
training = importlib.import_module("fcnseg.training.loop")
probe_dir = Path(os.environ["PROBE_DIR"])
index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
pause = float(os.environ.get("PAUSE_AT_EPOCH2", 0))
consumed = []  # per epoch, the local images of each step

class Probe(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.steps = []
    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        self.steps.append(0)
        consumed.append([])
    def on_train_batch_end(self, batch, logs=None):
        self.steps[-1] += 1
        if pause and self.epoch == 1 and batch == 0:
            (probe_dir / f"paused{index}").touch()
            time.sleep(pause)
    def on_train_end(self, logs=None):
        self.model.save_weights(probe_dir / f"worker{index}.weights.h5")
        (probe_dir / f"steps{index}.json").write_text(json.dumps(self.steps))
        np.savez(probe_dir / f"consumed{index}.npz", *[np.stack(images) for images in consumed if images])

def record(images):
    consumed[-1].append(images.numpy())
    return 0

def probed(build):
    def build_and_probe():
        model = build()
        step = model.train_step
        def train_step(data):
            tf.py_function(record, [data[0]], tf.int32)
            return step(data)
        model.train_step = train_step
        return model
    return build_and_probe

def probed_train(model, train_ds, *args, callbacks=(), **kwargs):
    return train(probed(model), train_ds, *args, callbacks=[*callbacks, Probe()], **kwargs)

train, training.train = training.train, probed_train  # the CLI imports fcnseg.training.loop's train when it runs
sys.exit(cli.main_train(sys.argv[1:]))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tf_configs(workers: int = 2) -> list[str]:
    cluster = {"worker": [f"127.0.0.1:{free_port()}" for _ in range(workers)]}
    return [json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}) for i in range(workers)]


def cli_args(root, out, epochs):
    """4 train frames (the `small_camvid` folder), global batch 2: 2 steps per epoch. Scale range 1 1
    leaves random flips as the only augmentation, so each image seen is a whole frame, maybe mirrored.
    The `reference` recipe (no colour jitter, no class weights) with FCN-32s, the bilinear decoder and
    sparse cross-entropy (its notebook decoder and BCE are not what this checks); the encoder frozen,
    for a cheaper graph (fc6, fc7 and the decoder train)."""
    return ["--recipe", "reference", "--dataset", "camvid", "--root", str(root), "--variant", "fcn32s", "--decoder", "bilinear",
            "--loss", "sparse_ce", "--backbone-weights", "none", "--fc-units", "32", "--frozen-blocks", "5",
            "--image-size", "64", "64",
            "--scale-range", "1", "1", "--batch-size", "2", "--epochs", str(epochs), "--precision", "float32",
            "--schedule", "constant", "--strategy", "multiworker", "--out", str(out)]


def launch(configs, args, tmp_path, name, **env):
    """Start one worker process per TF_CONFIG; stdout and stderr go to <name><i>.log."""
    base = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}  # gRPC stays on loopback
    base.update(PYTHONPATH=os.pathsep.join([str(REPO / "src"), base.get("PYTHONPATH", "")]),
                TF_CPP_MIN_LOG_LEVEL="2", TMPDIR=str(tmp_path / f"{name}_tmp"), PROBE_DIR=str(tmp_path / "probe"), **env)
    command = [sys.executable, "-c", WORKER]
    (tmp_path / f"{name}_tmp").mkdir(exist_ok=True)
    (tmp_path / "probe").mkdir(exist_ok=True)
    procs = []
    for i, config in enumerate(configs):
        log = open(tmp_path / f"{name}{i}.log", "w")
        procs.append(subprocess.Popen([*command, *args], cwd=tmp_path, env={**base, "TF_CONFIG": config},
                                      stdout=log, stderr=subprocess.STDOUT))
        log.close()
    return procs


def kill(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait()


def wait_all(procs, tmp_path, name, timeout=WORKER_TIMEOUT):
    """Wait for every worker to succeed; kill them all and fail with their logs otherwise."""
    deadline = time.monotonic() + timeout
    try:
        for proc in procs:
            proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        pass
    finally:
        for proc in procs:
            kill(proc)
    codes = [proc.returncode for proc in procs]
    logs = "\n".join(f"--- worker {i}:\n" + (tmp_path / f"{name}{i}.log").read_text()[-3000:] for i in range(len(procs)))
    assert codes == [0] * len(procs), f"exit codes {codes} (negative: killed after {timeout} s)\n{logs}"


def history_epochs(out):
    with open(out / "history.csv", newline="") as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


def weights(path) -> list[np.ndarray]:
    with h5py.File(path, "r") as f:
        arrays = []
        f.visititems(lambda _, node: arrays.append(node[()]) if isinstance(node, h5py.Dataset) else None)
    return arrays


def assert_one_consistent_run(out, epochs):
    """The chief's files only: no backup, no half-written temporary file, a loadable best model."""
    assert sorted(p.name for p in out.iterdir()) == RUN_FILES
    assert history_epochs(out) == list(range(epochs))
    best = json.loads((out / "best.json").read_text())
    assert 1 <= best["epoch"] <= epochs
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["best_checkpoint"] == best and 0 <= metrics["mean_iou"] <= 1
    assert load_fcn(out / "best.keras").output_shape == (None, None, None, 11)


@pytest.fixture(scope="module")
def two_workers(small_camvid, tmp_path_factory):
    """A 3-epoch run on two worker processes whose second worker is killed mid-epoch 2, then the
    same command started again on both: it resumes from the chief's backup and runs epochs 2 and 3.
    Returns the run folder and the probe folder (what the resumed workers did)."""
    tmp_path = tmp_path_factory.mktemp("two_workers")
    out = tmp_path / "run"
    configs, args = tf_configs(), cli_args(small_camvid, out, 3)

    procs = launch(configs, args, tmp_path, "first", PAUSE_AT_EPOCH2="30")
    try:
        deadline = time.monotonic() + WORKER_TIMEOUT
        while not (tmp_path / "probe" / "paused1").exists():
            assert time.monotonic() < deadline and procs[1].poll() is None, (tmp_path / "first1.log").read_text()[-3000:]
            time.sleep(0.2)
        procs[1].send_signal(signal.SIGKILL)  # mid-epoch 2
        assert procs[1].wait(timeout=30) == -signal.SIGKILL
    finally:  # the survivor would wait in a collective for its dead peer: a cluster manager ends the job
        for proc in procs:
            kill(proc)
    assert history_epochs(out) == [0]
    assert json.loads((out / "backup" / "training_metadata.json").read_text())["epoch"] == 1
    (tmp_path / "probe" / "paused1").unlink()

    wait_all(launch(configs, args, tmp_path, "again"), tmp_path, "again")
    return out, tmp_path


def test_two_workers_train_and_end_with_identical_weights(two_workers):
    _, tmp_path = two_workers
    probe = tmp_path / "probe"
    assert json.loads((probe / "steps0.json").read_text()) == json.loads((probe / "steps1.json").read_text()) == [2, 2]
    final = [weights(probe / f"worker{i}.weights.h5") for i in range(2)]
    assert len(final[0]) == len(final[1]) > 0
    for a, b in zip(*final):
        np.testing.assert_array_equal(a, b)


def frame_ids(images, frames):
    """Which of `frames` (64x64 RGB, float) each image is, itself or mirrored (the only augmentation left)."""
    ids = []
    for image in images:
        distances = [min(np.abs(image - f).mean(), np.abs(image - f[:, ::-1]).mean()) for f in frames]
        best = int(np.argmin(distances))
        assert distances[best] < 1.0 < sorted(distances)[1], distances  # one frame, clearly
        ids.append(best)
    return ids


def test_each_worker_fits_on_its_own_share_of_every_global_batch(two_workers, small_camvid):
    _, tmp_path = two_workers
    paths = sorted((small_camvid / "train").glob("*.png"))
    frames = [resize_pair(load_image(p), np.zeros((1, 1), np.uint8), (64, 64))[0].numpy() for p in paths]
    seen = []  # seen[worker][epoch][step]: the frame ids that worker's train step received
    for i in range(2):
        with np.load(tmp_path / "probe" / f"consumed{i}.npz") as consumed:
            epochs = [consumed[f"arr_{e}"] for e in range(len(consumed.files))]
        assert [e.shape for e in epochs] == [(2, 1, 64, 64, 3)] * 2  # 2 epochs of 2 steps, 1 image each: half of 2
        seen.append([[frame_ids(step, frames) for step in epoch] for epoch in epochs])
    for epoch in range(2):
        ids = [frame for worker in seen for frame in sum(worker[epoch], [])]
        assert sorted(ids) == [0, 1, 2, 3], f"epoch {epoch + 2}: the workers saw frames {seen}"  # each once, none twice


def test_only_the_chief_writes_the_run_files(two_workers):
    out, tmp_path = two_workers
    assert_one_consistent_run(out, epochs=3)
    assert not list((tmp_path / "again_tmp").iterdir())  # the other worker's saves were deleted


def test_a_killed_worker_is_restarted_and_only_the_unfinished_epochs_run(two_workers):
    out, tmp_path = two_workers
    assert_one_consistent_run(out, epochs=3)
    log = (tmp_path / "again0.log").read_text()
    assert "Epoch 2/3" in log and "Epoch 3/3" in log and "Epoch 1/3" not in log


# ------------------------------------------------------------------ TF_CONFIG errors


@pytest.mark.parametrize(
    "config, problem",
    [
        (None, "it is not set"),
        ("{cluster: ", "it is not valid JSON"),
        ('["worker"]', 'no "cluster" object'),
        ('{"cluster": {"ps": ["a:1"]}, "task": {"type": "worker", "index": 0}}', 'no "worker" (or "chief") list'),
        ('{"cluster": {"worker": ["localhost"]}, "task": {"type": "worker", "index": 0}}', '"host:port" addresses'),
        ('{"cluster": {"worker": ["a:1", "b:1"]}}', 'no "task" object'),
        ('{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "ps", "index": 0}}', "task type 'ps'"),
        ('{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 2}}', "index 2 is not one of 0..1"),
        ('{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": "0"}}', "index '0'"),
    ],
)
def test_a_bad_tf_config_says_what_is_wrong_and_shows_an_example(config, problem):
    with pytest.raises(ValueError) as error:
        check_tf_config(config)
    assert problem in str(error.value) and TF_CONFIG_EXAMPLE in str(error.value)


def test_the_cli_refuses_multiworker_without_tf_config(monkeypatch, tmp_path):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="needs the TF_CONFIG environment variable: it is not set"):
        run(["--dataset", "camvid", "--root", str(tmp_path), "--strategy", "multiworker", "--out", str(tmp_path)])
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 1}}')
    with pytest.raises(ValueError, match="index 1 is not one of 0..0"):
        make_strategy("multiworker")
    assert not list(tmp_path.iterdir())  # refused before reading data or writing anything


# ------------------------------------------------------------------ mixed precision


class LossScaleLog(keras.callbacks.Callback):
    """The optimizer's loss scale after each step."""

    def on_train_begin(self, logs=None):
        self.scales = []

    def on_train_batch_end(self, batch, logs=None):
        self.scales.append(float(self.model.optimizer.dynamic_scale))


def test_mixed_float16_training_scales_the_loss(camvid_root, tmp_path):
    """train() under mixed_float16 trains with dynamic loss scaling: finite losses, and a scale
    that moves from step to step (it doubles after each run of finite steps and halves when
    float16 gradients overflow; a growth period of 1 step makes that visible in two steps)."""
    # Two small steps: float16 convolutions are slow on CPUs.
    ds = make_dataset(camvid_root, "val", dataset="camvid", image_size=(32, 32), batch_size=1).take(2)
    scales = LossScaleLog()
    try:
        set_precision("mixed_float16")
        history = train(lambda: build_fcn("fcn32s", num_classes=11, fc_units=32, backbone_weights=None), ds,
                        epochs=1, optimizer=lambda: keras.optimizers.LossScaleOptimizer(
                            keras.optimizers.Adam(1e-4), dynamic_growth_steps=1),
                        callbacks=[scales], checkpoint_dir=tmp_path, verbose=0)  # fmt: skip
    finally:
        set_precision("float32")
    assert np.isfinite(history.history["loss"]).all()
    assert len(scales.scales) == 2 and scales.scales[0] != scales.scales[1], scales.scales
    assert history.model.get_layer("fc7").compute_dtype == "float16"
