"""Training with `model.fit`: void-aware losses, best checkpoint by validation
mean IoU, CSV history, NaN guard, resumable runs and `tf.distribute`.

From a notebook:

>>> from fcnseg.train import train
>>> history = train(lambda: build_fcn("fcn8s", num_classes=11), train_ds, val_ds,
...                 epochs=40, checkpoint_dir="runs/camvid_fcn8s")   # doctest: +SKIP

From a shell (trains, then scores the best checkpoint at full resolution):

    fcnseg-train --dataset camvid --variant fcn8s --epochs 40 --out runs/camvid_fcn8s
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import keras
import tensorflow as tf  # tf.distribute only

from fcnseg.checks import one_of, positive_int, positive_number
from fcnseg.datasets import DATASETS, get_spec
from fcnseg.files import atomic_path, portable_path, write_json
from fcnseg.losses import MaskedBinaryCrossEntropy, MaskedCrossEntropy
from fcnseg.metrics import SegmentationMeanIoU

LOSSES = ("sparse_ce", "bce_onehot")
SCHEDULES = ("plateau", "poly", "constant")
MONITOR = "val_mean_iou"


PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")


def set_precision(policy: str = "auto") -> str:
    """Set Keras' global dtype policy; call it *before* building the model.

    ``"mixed_float16"`` for NVIDIA GPUs, ``"mixed_bfloat16"`` for CPUs with
    AVX-512 BF16 or AMX (and TPUs), ``"float32"`` otherwise; ``"auto"`` picks
    among these for this machine. Losses, metrics and the model's logits stay
    float32. Returns the policy set.

    >>> set_precision("float32")
    'float32'
    """
    if one_of("precision", policy, PRECISIONS) == "auto":
        policy = auto_precision()
    keras.mixed_precision.set_global_policy(policy)
    return policy


def auto_precision() -> str:
    """The fastest policy for this machine: float16 on GPUs, bfloat16 on CPUs with bf16 units.

    The CPU's features come from NumPy's runtime detection (any OS); every CPU
    with AMX also has AVX-512 BF16, so that one flag covers both.
    """
    if tf.config.list_physical_devices("GPU"):
        return "mixed_float16"
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as cpu_features
    except ImportError:  # a NumPy without the detection table: stay safe
        cpu_features = {}
    return "mixed_bfloat16" if cpu_features.get("AVX512BF16") else "float32"


def make_loss(loss: str = "sparse_ce", *, class_weights=None) -> keras.losses.Loss:
    """``"sparse_ce"``: softmax cross-entropy ignoring void (optionally class-weighted);
    ``"bce_onehot"``: the reference notebook's BCE on one-hot targets, void ignored."""
    if one_of("loss", loss, LOSSES) == "sparse_ce":
        return MaskedCrossEntropy(class_weights=class_weights)
    if class_weights is not None:
        raise ValueError("class_weights are supported with loss='sparse_ce' only.")
    return MaskedBinaryCrossEntropy()


def make_optimizer(learning_rate: float = 1e-4, *, schedule: str = "plateau", decay_steps: int | None = None):
    """Adam with a constant rate (``"plateau"``: lowered by `ReduceLROnPlateau`,
    ``"constant"``) or the polynomial decay of DeepLab (``"poly"``, power 0.9)."""
    learning_rate = positive_number("learning_rate", learning_rate)
    if one_of("schedule", schedule, SCHEDULES) == "poly":
        if not decay_steps:
            raise ValueError("schedule='poly' needs the number of training steps (decay_steps).")
        learning_rate = keras.optimizers.schedules.PolynomialDecay(
            learning_rate, decay_steps, end_learning_rate=learning_rate * 1e-3, power=0.9
        )
    return keras.optimizers.Adam(learning_rate)


def is_chief(strategy) -> bool:
    """Whether this process writes the run's files under `strategy` (None: the default
    one): always, except on the non-chief workers of a multi-worker strategy
    (TensorFlow's ``should_checkpoint``)."""
    return (strategy or tf.distribute.get_strategy()).extended.should_checkpoint


class BestCheckpoint(keras.callbacks.Callback):
    """Save the model when the monitored score improves, atomically.

    The best score so far is kept in ``<path>.json`` beside the model, so a
    resumed run (``resume=True``) does not overwrite a better checkpoint with a
    worse one. A fresh run starts its own record; the previous file stays until
    the new run's first finished epoch replaces it.

    Under a multi-worker strategy every worker saves (reading distributed
    variables may need all of them), but only the chief's file is kept: the
    others save into a temporary folder and delete it, as Keras' own
    checkpoints do. The record must be readable by every worker (a shared
    ``checkpoint_dir``) so that all of them agree on when to save.
    """

    def __init__(self, path, monitor: str = MONITOR, *, resume: bool = False):
        super().__init__()
        self.path = Path(path)
        self.monitor = monitor
        self.record = self.path.with_suffix(".json")
        self.resume = resume

    def on_train_begin(self, logs=None):
        self._best = self._recorded_best() if self.resume else -math.inf

    def _recorded_best(self) -> float:
        if self.record.is_file() and self.path.is_file():
            return json.loads(self.record.read_text()).get(self.monitor, -math.inf)
        return -math.inf

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or not math.isfinite(value) or value <= self._best:
            return
        if is_chief(self.model.distribute_strategy):
            with atomic_path(self.path) as tmp:
                self.model.save(tmp)
            write_json(self.record, {self.monitor: float(value), "epoch": epoch + 1})
        else:
            with tempfile.TemporaryDirectory(prefix="fcnseg-worker-") as tmp:
                self.model.save(Path(tmp) / self.path.name)
        self._best = value


class LogLearningRate(keras.callbacks.Callback):
    """Put the optimizer's current learning rate into the epoch logs (for any schedule)."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs.setdefault("learning_rate", float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))


class EpochTimer(keras.callbacks.Callback):
    """Put each epoch's wall-clock seconds (training and validation) into the epoch logs."""

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["epoch_seconds"] = round(time.perf_counter() - self._started, 2)


class NaNGuard(keras.callbacks.Callback):
    """Stop training with `FloatingPointError` at the first batch whose loss is NaN or infinite.

    Unlike `TerminateOnNaN`, which lets the epoch finish, raising ends `fit`
    at once: the epoch-end callbacks never see the broken weights, so
    `BackupAndRestore` keeps the last good epoch, `BestCheckpoint` keeps the
    best model and ``history.csv`` gets no NaN row. ``where`` is (epoch, batch), 1-based.
    """

    where: tuple[int, int] | None = None
    epoch: int = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.where = (self.epoch + 1, batch + 1)
            self.model.stop_training = True
            raise FloatingPointError(f"The loss became {float(loss)} at epoch {self.where[0]}, batch {self.where[1]}.")


def train(
    model,
    train_ds,
    val_ds=None,
    *,
    epochs: int = 10,
    loss: str = "sparse_ce",
    class_weights=None,
    learning_rate: float = 1e-4,
    schedule: str = "plateau",
    optimizer=None,
    checkpoint_dir="runs/fcn",
    strategy=None,
    jit_compile: bool = False,
    tensorboard: bool = False,
    callbacks=(),
    verbose="auto",
) -> keras.callbacks.History:
    """Compile and fit a segmentation model; the best model is ``checkpoint_dir/best.keras``.

    Args:
        model: a `keras.Model`, or a function that builds one. With a
            `strategy`, pass the function: the model and optimizer must be
            created under ``strategy.scope()``, which this function does.
        train_ds, val_ds: datasets of (images, masks) from `make_dataset`
            (global batches under a strategy). Without `val_ds` the training
            mean IoU picks the best checkpoint.
        loss: ``"sparse_ce"`` (void ignored) or ``"bce_onehot"`` (the reference).
        learning_rate, schedule: Adam's rate and ``"plateau"`` (the reference's
            ReduceLROnPlateau on validation mean IoU), ``"poly"`` or ``"constant"``.
        optimizer: a function returning a Keras optimizer, to replace Adam.
        checkpoint_dir: ``best.keras`` (+ ``best.json``), ``history.csv`` and
            ``backup/`` (`BackupAndRestore`: rerun the same call after a crash
            and training resumes from the last finished epoch).
        strategy: a `tf.distribute.Strategy` (e.g. `MirroredStrategy`). Under
            `MultiWorkerMirroredStrategy` only the chief writes into
            `checkpoint_dir`, which every worker must be able to read (it
            resumes from the chief's backup).
        jit_compile: compile the train step with XLA.

    Raises:
        FloatingPointError: the loss became NaN; the best checkpoint is intact.
    """
    epochs = positive_int("epochs", epochs)
    if tensorboard and importlib.util.find_spec("tensorboard") is None:  # else fit fails after a whole epoch
        raise ModuleNotFoundError("tensorboard=True needs the tensorboard package: pip install tensorboard")
    strategy = strategy or tf.distribute.get_strategy()
    chief = is_chief(strategy)
    checkpoint_dir = Path(checkpoint_dir)
    if chief:
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
    backup_dir = checkpoint_dir / "backup"
    resuming = backup_dir.is_dir() and any(backup_dir.iterdir())

    with strategy.scope():
        if callable(model) and not isinstance(model, keras.Model):
            model = model()
        elif strategy.num_replicas_in_sync > 1:
            _check_created_in_scope(model, strategy)
        steps = int(train_ds.cardinality())
        decay_steps = epochs * steps if steps > 0 else None
        opt = optimizer() if optimizer else make_optimizer(learning_rate, schedule=schedule, decay_steps=decay_steps)
        model.compile(
            optimizer=opt,
            loss=make_loss(loss, class_weights=class_weights),
            metrics=[SegmentationMeanIoU(model.output_shape[-1])],
            jit_compile=jit_compile,
        )

    monitor = MONITOR if val_ds is not None else "mean_iou"
    guard = NaNGuard()
    csv_logger = keras.callbacks.CSVLogger(str(checkpoint_dir / "history.csv"), append=resuming) if chief else None
    with contextlib.ExitStack() as stack:
        backup = backup_dir if chief else _private_backup(backup_dir, stack)
        cbs = [
            keras.callbacks.BackupAndRestore(str(backup)),
            guard,
            BestCheckpoint(checkpoint_dir / "best.keras", monitor, resume=resuming),
            *callbacks,
        ]
        if schedule == "plateau":
            cbs.append(keras.callbacks.ReduceLROnPlateau(monitor, mode="max", factor=0.5, patience=3, min_lr=1e-7))
        if tensorboard and chief:
            cbs.append(keras.callbacks.TensorBoard(str(checkpoint_dir / "logs")))
        cbs += [LogLearningRate(), EpochTimer()]
        if csv_logger:
            cbs.append(csv_logger)  # last, so the log has the rate the scheduler just set
        try:
            return model.fit(train_ds, validation_data=val_ds, epochs=epochs, callbacks=cbs, verbose=verbose, shuffle=False)
        except FloatingPointError:
            if not guard.where:
                raise
            epoch, batch = guard.where
            best = checkpoint_dir / "best.keras"
            kept = f"the best checkpoint {best} is intact" if best.is_file() else "no checkpoint had been saved yet"
            raise FloatingPointError(
                f"The loss became NaN at epoch {epoch}, batch {batch}; training stopped and {kept} "
                "(rerunning with the same checkpoint_dir resumes from the last finished epoch). "
                "Lower the learning rate, check the data for corrupt masks, or use float32."
            ) from None
        finally:
            if csv_logger:
                csv_logger.on_train_end()  # close history.csv also when fit was interrupted


def _private_backup(backup_dir: Path, stack: contextlib.ExitStack) -> Path:
    """A non-chief worker's backup folder: a temporary copy of the chief's `backup_dir`
    (so every worker resumes from the same epoch and weights), deleted when `stack` closes."""
    private = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fcnseg-worker-"))) / "backup"
    if backup_dir.is_dir():
        shutil.copytree(backup_dir, private)
    return private


def _check_created_in_scope(model, strategy):
    if not strategy.extended.variable_created_in_scope(model.weights[0].value):
        raise ValueError(
            "With a tf.distribute strategy, pass a function that builds the model "
            "(e.g. lambda: build_fcn(...)) so that train() creates it under strategy.scope()."
        )


class MultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
    """TensorFlow's multi-worker strategy, with the `reduce` that Keras 3's `fit` expects
    (keras-team/keras#20585): nested values are reduced leaf by leaf, as
    `MirroredStrategy.reduce` does (fit reduces a whole (images, masks) batch when it
    builds the model), and a scalar is reduced across replicas whatever `axis` says
    (fit asks for ``axis=0`` on the per-replica loss and metrics)."""

    def reduce(self, reduce_op, value, axis):
        def reduce_one(v):
            scalar = self.experimental_local_results(v)[0].shape.rank == 0
            return super(MultiWorkerMirroredStrategy, self).reduce(reduce_op, v, None if scalar else axis)

        return tf.nest.map_structure(reduce_one, value)


def make_strategy(name: str = "none"):
    """``"none"`` (the default strategy), ``"mirrored"`` (every local GPU, or the CPU)
    or ``"multiworker"`` (the cluster described by the ``TF_CONFIG`` variable).

    Call it at program start: a multi-worker strategy must exist before
    TensorFlow runs its first operation (e.g. before building a dataset).
    """
    strategies = {
        "none": lambda: None,
        "mirrored": tf.distribute.MirroredStrategy,
        "multiworker": MultiWorkerMirroredStrategy,
    }
    if one_of("strategy", name, tuple(strategies)) == "multiworker":
        check_tf_config(os.environ.get("TF_CONFIG"))
    return strategies[name]()


TF_CONFIG_EXAMPLE = json.dumps(
    {"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}
)


def check_tf_config(text: str | None) -> dict:
    """Parse a ``TF_CONFIG`` value for ``--strategy multiworker``, or raise a
    `ValueError` that says what is wrong and shows an example.

    >>> check_tf_config(TF_CONFIG_EXAMPLE)["task"]
    {'type': 'worker', 'index': 0}
    """
    def fail(problem):
        raise ValueError(
            f"--strategy multiworker needs the TF_CONFIG environment variable: {problem}. Set it on every "
            f"worker, with the same cluster and this worker's own task (worker 0 is the chief), e.g.\n"
            f"  TF_CONFIG='{TF_CONFIG_EXAMPLE}'"
        )

    if not text:
        fail("it is not set")
    try:
        config = json.loads(text)
    except json.JSONDecodeError as e:
        fail(f"it is not valid JSON ({e})")
    if not isinstance(config, dict) or not isinstance(config.get("cluster"), dict):
        fail('it has no "cluster" object')
    cluster = config["cluster"]
    if not isinstance(cluster.get("worker", cluster.get("chief")), list):
        fail('its "cluster" has no "worker" (or "chief") list of "host:port" addresses')
    for job, addresses in cluster.items():
        if not isinstance(addresses, list) or not all(isinstance(a, str) and ":" in a for a in addresses):
            fail(f'its cluster job {job!r} is not a list of "host:port" addresses')
    task = config.get("task")
    if not isinstance(task, dict) or "type" not in task or "index" not in task:
        fail('it has no "task" object with a "type" and an "index"')
    if task["type"] not in ("chief", "worker") or task["type"] not in cluster:
        fail(f'its task type {task["type"]!r} is not a "chief" or "worker" job of the cluster')
    index, size = task["index"], len(cluster[task["type"]])
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < size:
        fail(f"its task index {index!r} is not one of 0..{size - 1} (the cluster's {task['type']!r} list)")
    return config


def _parse_args(argv=None):
    p = argparse.ArgumentParser(prog="fcnseg-train", description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--dataset", default="voc2007", choices=tuple(DATASETS))
    p.add_argument("--root", default=None, help="dataset folder (default: VOC_ROOT / CAMVID_ROOT / data/)")
    p.add_argument("--variant", default="fcn32s", choices=("fcn32s", "fcn16s", "fcn8s"))
    p.add_argument("--decoder", default="bilinear", choices=("bilinear", "notebook"))
    p.add_argument("--backbone-weights", default="imagenet", help="'imagenet', 'none' or a VGG16 no-top .h5 path")
    p.add_argument("--init-from", default=None, metavar="MODEL.keras",
                   help="start from a trained model (e.g. a best.keras) instead of the VGG16 encoder alone; "
                        "its architecture replaces --variant, --decoder, --skip-scales and --fc-units")
    p.add_argument("--skip-scales", type=float, nargs=2, default=(0.01, 0.0001), metavar=("POOL4", "POOL3"),
                   help="FCN-16s/8s skip scaling (the paper's SGD values; use 1 1 with Adam)")
    p.add_argument("--fc-units", type=int, default=4096, help="width of fc6/fc7 (1x1 convolutions)")
    p.add_argument("--frozen-blocks", type=int, default=0, choices=range(6), metavar="N",
                   help="keep VGG16 blocks 1..N fixed (cheaper steps)")
    p.add_argument("--image-size", type=int, nargs=2, default=(256, 256), metavar=("H", "W"))
    p.add_argument("--scale-range", type=float, nargs=2, default=(0.5, 2.0), metavar=("MIN", "MAX"))
    p.add_argument("--color-jitter", type=float, default=0.0,
                   help="random brightness/contrast/saturation factors in [1-x, 1+x] (0: off)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--loss", default="sparse_ce", choices=LOSSES)
    p.add_argument("--class-weights", default="none", choices=("none", "median", "sqrt_median"),
                   help="median-frequency weights over train pixels (sqrt_median: their square root)")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--schedule", default="plateau", choices=SCHEDULES)
    p.add_argument("--train-split", default=None, help="default: train")
    p.add_argument("--val-split", default="val")
    p.add_argument("--eval-split", default=None, help="split scored at full resolution (default: val for VOC, test for CamVid)")
    p.add_argument("--eval-input-size", type=int, nargs=2, default=None, metavar=("H", "W"),
                   help="resize images to this size for prediction (logits resized back); default: own size")
    p.add_argument("--eval-scales", type=float, nargs="+", default=[1.0], metavar="S",
                   help="score with test-time multi-scale averaging at these input scales (default: 1)")
    p.add_argument("--eval-flip", action="store_true",
                   help="score with test-time flip averaging (mirrored image's logits averaged in)")
    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="auto: mixed_float16 on GPUs, mixed_bfloat16 on CPUs with AVX-512 BF16/AMX, else float32")
    p.add_argument("--jit", action="store_true", help="XLA-compile the train step")
    p.add_argument("--strategy", default="none", choices=("none", "mirrored", "multiworker"),
                   help="tf.distribute: all local GPUs (mirrored) or the workers in TF_CONFIG; --batch-size is global")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="run folder (default: runs/<dataset>_<variant>)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    """Command line: ``fcnseg-train --dataset camvid --variant fcn8s ... --out RUN``."""
    run(argv)
    return 0


def run(argv=None) -> dict:
    """Train from command-line arguments, then score the best checkpoint; writes ``<out>/metrics.json`` and returns it.

    In a multi-worker run only the chief scores and writes; the other workers return ``{}``.
    """
    from fcnseg.evaluate import evaluate
    from fcnseg.fcn import build_fcn, load_fcn, resolve_backbone_weights
    from fcnseg.losses import median_frequency_weights
    from fcnseg.pipeline import class_pixel_counts, make_dataset

    args = _parse_args(argv)
    strategy = make_strategy(args.strategy)  # first: TensorFlow must not have started yet
    keras.utils.set_random_seed(args.seed)
    args.precision = set_precision(args.precision)
    spec = get_spec(args.dataset)
    out = Path(args.out or f"runs/{args.dataset}_{args.variant}")
    weights = None if args.backbone_weights.lower() == "none" else args.backbone_weights
    one_hot = args.loss == "bce_onehot"
    common = dict(dataset=spec, image_size=tuple(args.image_size), batch_size=args.batch_size, one_hot=one_hot, cache=True)
    train_ds = make_dataset(args.root, args.train_split or "train", augment=True, seed=args.seed,
                            scale_range=tuple(args.scale_range), color_jitter=args.color_jitter, **common)
    val_ds = make_dataset(args.root, args.val_split, **common)
    class_weights = None
    if args.class_weights != "none":
        counts = class_pixel_counts(make_dataset(args.root, args.train_split or "train", **{**common, "one_hot": False}),
                                    spec.num_classes)
        power = 0.5 if args.class_weights == "sqrt_median" else 1.0
        class_weights = median_frequency_weights(counts, power=power).tolist()

    started = time.time()
    def build():
        if args.init_from:
            return load_fcn(args.init_from)
        return build_fcn(args.variant, num_classes=spec.num_classes, backbone_weights=weights,
                         decoder=args.decoder, skip_scales=tuple(args.skip_scales), fc_units=args.fc_units,
                         frozen_blocks=args.frozen_blocks)

    train(
        build,
        train_ds, val_ds, epochs=args.epochs, loss=args.loss, class_weights=class_weights,
        learning_rate=args.lr, schedule=args.schedule, checkpoint_dir=out, jit_compile=args.jit,
        strategy=strategy, verbose=2,
    )
    train_seconds = time.time() - started
    if not is_chief(strategy):
        return {}
    eval_split = args.eval_split or ("test" if spec.name == "camvid" else "val")
    model = load_fcn(out / "best.keras")
    scores = evaluate(model, args.root, eval_split, dataset=spec, input_size=args.eval_input_size,
                      scales=args.eval_scales, flip=args.eval_flip)
    resolved = resolve_backbone_weights(weights)
    metrics = {
        "recipe": {**vars(args), **{k: portable_path(getattr(args, k)) for k in ("root", "init_from", "out")},
                   "backbone_weights": weights and portable_path(resolved), "class_weights": class_weights},
        "backbone_weights": Path(resolved).name if resolved not in ("imagenet", None) else resolved,
        "best_checkpoint": json.loads((out / "best.json").read_text()),
        "train_seconds": round(train_seconds, 1),
        **scores,
    }
    write_json(out / "metrics.json", metrics)
    print(json.dumps({k: metrics[k] for k in ("mean_iou", "frequency_weighted_iou", "pixel_accuracy")}))
    return metrics


if __name__ == "__main__":
    sys.exit(main())
