"""Training with `model.fit` and Keras' own parts: the sparse cross-entropy (or the
reference's BCE) with void ignored, `MeanIoU`, `ModelCheckpoint` of the best
validation mean IoU, `TerminateOnNaN`, `BackupAndRestore`, `CSVLogger`, under
any `tf.distribute` strategy and dtype policy.

>>> from fcnseg.training.loop import train
>>> history = train(lambda: build_fcn("fcn8s", num_classes=11), train_ds, val_ds,
...                 epochs=40, checkpoint_dir="runs/camvid_fcn8s")   # doctest: +SKIP

From a shell, with a named recipe (`fcnseg.recipes`) and any single value changed:

    fcnseg-train --recipe camvid --epochs 40 --out runs/camvid_fcn8s
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

import keras
import tensorflow as tf  # tf.distribute only

from fcnseg.checks import SCHEDULES, one_of, positive_int, positive_number
from fcnseg.training.distribute import is_chief
from fcnseg.files import write_json
from fcnseg.training.losses import make_loss
from fcnseg.metrics import mean_iou_metric
from fcnseg.options import Options

MONITOR = "val_mean_iou"


def make_optimizer(learning_rate: float = Options.learning_rate, *, schedule: str = Options.schedule,
                   decay_steps: int | None = None):
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


class BestCheckpoint(keras.callbacks.ModelCheckpoint):
    """`ModelCheckpoint` of the best model (``save_best_only=True, mode="max"``) plus
    what Keras lacks: an atomic write, a record of the best score, chief-only files.

    - The model is saved under a temporary name beside `path` and renamed onto
      it, so a crash while saving never leaves a broken best model.
    - The best score goes to ``<path>.json``; a resumed run (``resume=True``)
      starts from it (``initial_value_threshold``), so it never overwrites a
      better model with a worse one. A fresh run starts its own record.
    - Under a multi-worker strategy every worker saves (reading distributed
      variables may need all of them), but only the chief keeps its file; the
      others save into a temporary folder. The record must be readable by every
      worker (a shared ``checkpoint_dir``) so that all of them agree on when to save.
    """

    def __init__(self, path, monitor: str = MONITOR, *, resume: bool = False):
        self.path = Path(path)
        self.record = self.path.with_suffix(".json")
        best = None
        if resume and self.record.is_file() and self.path.is_file():
            best = json.loads(self.record.read_text()).get(monitor)
        staging = self.path.with_name(f".{self.path.stem}.saving{self.path.suffix}")
        super().__init__(staging, monitor, save_best_only=True, mode="max", initial_value_threshold=best)

    def on_train_begin(self, logs=None):
        if not is_chief(self.model.distribute_strategy):
            self._scratch = tempfile.TemporaryDirectory(prefix="fcnseg-worker-")  # removed with this callback
            self.filepath = str(Path(self._scratch.name) / self.path.name)

    def on_epoch_end(self, epoch, logs=None):
        value, before = (logs or {}).get(self.monitor), self.best
        if value is None or not math.isfinite(value):
            return
        super().on_epoch_end(epoch, logs)  # saves to self.filepath when the score improved
        if self.best != before and is_chief(self.model.distribute_strategy):
            os.replace(self.filepath, self.path)
            write_json(self.record, {self.monitor: float(value), "epoch": epoch + 1})


class LogLearningRate(keras.callbacks.Callback):
    """Put the optimizer's current learning rate into the epoch logs (for any schedule)."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs.setdefault("learning_rate", float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))


class EpochTimer(keras.callbacks.Callback):
    """Put each epoch's wall-clock seconds (training and validation) into the epoch logs;
    `epoch` is the epoch in progress (0-based), for error messages."""

    epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch, self._started = epoch, time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["epoch_seconds"] = round(time.perf_counter() - self._started, 2)


def train(model, train_ds, val_ds=None, *, epochs: int = Options.epochs, loss: str = Options.loss,
          learning_rate: float = Options.learning_rate, schedule: str = Options.schedule, optimizer=None,
          checkpoint_dir="runs/fcn", strategy=None, jit_compile: bool = Options.jit_compile,
          tensorboard: bool = Options.tensorboard, callbacks=(), verbose="auto") -> keras.callbacks.History:  # fmt: skip
    """Compile and fit a segmentation model; the best model is ``checkpoint_dir/best.keras``.

    Args:
        model: a `keras.Model`, or a function that builds one. With a
            `strategy`, pass the function: the model and optimizer must be
            created under ``strategy.scope()``, which this function does.
        train_ds, val_ds: datasets of (images, masks) or (images, masks, weights)
            from `make_dataset` (global batches under a strategy; class weights
            are ``make_dataset(..., class_weights=...)``'s per-pixel weights).
            Without `val_ds` the training mean IoU picks the best checkpoint.
        loss: one of `fcnseg.checks.LOSSES` (``"bce"``: the reference's), void ignored.
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

    model = _compiled(model, strategy, train_ds, epochs, loss=loss, learning_rate=learning_rate, schedule=schedule,
                      optimizer=optimizer, jit_compile=jit_compile)  # fmt: skip
    monitor = MONITOR if val_ds is not None else "mean_iou"
    timer = EpochTimer()
    csv_logger = keras.callbacks.CSVLogger(str(checkpoint_dir / "history.csv"), append=resuming) if chief else None
    with contextlib.ExitStack() as stack:
        backup = backup_dir if chief else _private_backup(backup_dir, stack)
        cbs = [keras.callbacks.BackupAndRestore(str(backup)),
               keras.callbacks.TerminateOnNaN(raise_error=True),  # at the bad batch: epoch-end callbacks never see it
               BestCheckpoint(checkpoint_dir / "best.keras", monitor, resume=resuming), *callbacks,
               *_optional_callbacks(monitor, schedule, tensorboard and chief, checkpoint_dir),
               LogLearningRate(), timer, *([csv_logger] if csv_logger else [])]  # the log last: it has the new rate
        try:
            return model.fit(train_ds, validation_data=val_ds, epochs=epochs, callbacks=cbs, verbose=verbose, shuffle=False)
        except RuntimeError as e:
            raise _nan_error(e, timer.epoch, checkpoint_dir) from None
        finally:
            if csv_logger:
                csv_logger.on_train_end()  # close history.csv also when fit was interrupted


def _optional_callbacks(monitor: str, schedule: str, tensorboard: bool, checkpoint_dir: Path) -> list:
    """`ReduceLROnPlateau` for ``schedule="plateau"`` and `TensorBoard` logs when asked for."""
    found = []
    if schedule == "plateau":
        found.append(keras.callbacks.ReduceLROnPlateau(monitor, mode="max", factor=0.5, patience=3, min_lr=1e-7))
    if tensorboard:
        found.append(keras.callbacks.TensorBoard(str(checkpoint_dir / "logs")))
    return found


def _compiled(model, strategy, train_ds, epochs: int, *, loss, learning_rate, schedule, optimizer, jit_compile):
    """`model` (or what the function `model` builds) compiled under `strategy`'s scope, its optimizer built."""
    with strategy.scope():
        if callable(model) and not isinstance(model, keras.Model):
            model = model()
        elif strategy.num_replicas_in_sync > 1:
            _check_created_in_scope(model, strategy)
        steps = int(train_ds.cardinality())
        decay_steps = epochs * steps if steps > 0 else None
        opt = optimizer() if optimizer else make_optimizer(learning_rate, schedule=schedule, decay_steps=decay_steps)
        model.compile(optimizer=opt, loss=make_loss(loss), metrics=[mean_iou_metric(model.output_shape[-1])],
                      jit_compile=jit_compile)  # fmt: skip
        model.optimizer.build(model.trainable_variables)  # now, or fit traces its train step twice
    return model


def _nan_error(error: RuntimeError, epoch: int, checkpoint_dir: Path) -> Exception:
    """`TerminateOnNaN`'s error as a `FloatingPointError` saying where it stopped and what was kept;
    any other `RuntimeError` as it is."""
    found = re.search(r"NaN or Inf loss encountered at batch (\d+)", str(error))
    if not found:
        return error
    best = checkpoint_dir / "best.keras"
    kept = f"the best checkpoint {best} is intact" if best.is_file() else "no checkpoint had been saved yet"
    return FloatingPointError(
        f"The loss became NaN at epoch {epoch + 1}, batch {int(found.group(1)) + 1}; training stopped and {kept} "
        "(rerunning with the same checkpoint_dir resumes from the last finished epoch). "
        "Lower the learning rate, check the data for corrupt masks, or use float32."
    )


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
