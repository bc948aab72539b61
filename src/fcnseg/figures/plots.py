"""Training and evaluation plots: curves, time to quality, per-class IoU, confusion matrix.

Plain NumPy and matplotlib, no TensorFlow; each function returns a
`matplotlib.figure.Figure` not registered with pyplot (see `fcnseg.figures.viz`), which
`fcnseg.figures.viz.save_figure` writes to disk.

>>> fig = plot_history("runs/camvid_fcn8s/history.csv")     # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from fcnseg.training.record import logged_epochs

LR_KEYS = ("learning_rate", "lr")
TIME_KEY = "epoch_seconds"  # wall-clock time per epoch (fcnseg.training.loop logs it): not a curve of plot_history


def plot_history(history) -> Figure:
    """Training curves: a loss panel, a metrics panel and a learning-rate panel.

    `history` is a Keras ``History`` (or its ``.history`` dict), the path of a
    CSV written by ``keras.callbacks.CSVLogger``, or a list of such paths (the
    stages of one run in order, such as `RunPlan.history_files`: the epochs are
    numbered on). Each metric is drawn with its
    ``val_`` twin (same colour, dashed); the best ``val_loss`` is marked. Panels
    without data (no metrics, no learning rate) are left out.

    >>> fig = plot_history({"loss": [0.9, 0.5], "val_loss": [1.0, 0.7], "lr": [1e-3, 1e-4]})
    >>> [ax.get_title() for ax in fig.axes]
    ['loss', 'learning rate']
    """
    logs = _read_history(history)
    epochs = logs.pop("epoch", None)
    epochs = np.arange(1, _length(logs) + 1) if epochs is None else epochs + 1
    lr = next((logs.pop(k) for k in LR_KEYS if k in logs), None)
    logs.pop(TIME_KEY, None)
    losses = [k for k in logs if k.endswith("loss")]
    metrics = [k for k in logs if k not in losses]
    panels = [("loss", losses)] + ([("metrics", metrics)] if metrics else [])
    panels = [(name, keys) for name, keys in panels if keys]
    if not panels and lr is None:
        raise ValueError("The history has no loss, metric or learning-rate column to plot.")
    fig = Figure(figsize=(4.5 * (len(panels) + (lr is not None)), 3.5), layout="constrained")
    axes = fig.subplots(1, len(panels) + (lr is not None), squeeze=False)[0]
    for ax, (name, keys) in zip(axes, panels):
        _plot_curves(ax, epochs, {k: logs[k] for k in keys}, name)
    if lr is not None:
        _plot_learning_rate(axes[-1], epochs, lr)
    return fig


def plot_time_to_quality(runs, *, metric="val_mean_iou", title=None) -> Figure:
    """A score against wall-clock training time (left) and against epochs (right), one line per run.

    `runs` maps a label to a history as `plot_history` takes it (a Keras
    ``History``, its dict, or a ``history.csv`` path) holding `metric` and
    ``epoch_seconds`` (`fcnseg.training.loop.train` logs both). The best score of each
    run is marked.

    >>> fig = plot_time_to_quality({"a": {"val_mean_iou": [0.2, 0.4], "epoch_seconds": [60, 60]}})
    >>> [ax.get_xlabel() for ax in fig.axes]
    ['wall-clock training time (hours)', 'epoch']
    """
    if not isinstance(runs, Mapping) or not runs:
        raise ValueError("runs must be a non-empty {label: history} mapping.")
    fig = Figure(figsize=(10, 4.2 + 0.2 * len(runs)), layout="constrained")
    by_time, by_epoch = fig.subplots(1, 2)
    for label, history in runs.items():
        logs = _read_history(history)
        missing = [k for k in (metric, TIME_KEY) if k not in logs]
        if missing:
            raise ValueError(f"The history of run {label!r} has no {missing} column(s); "
                             f"fcnseg.training.loop.train logs {TIME_KEY!r} and the validation scores.")  # fmt: skip
        hours = np.cumsum(logs[TIME_KEY]) / 3600
        score = logs[metric]
        epochs = np.arange(1, len(score) + 1)
        best = int(np.nanargmax(score))
        for ax, x in ((by_time, hours), (by_epoch, epochs)):
            (line,) = ax.plot(x, score, marker=".", label=f"{label} (best {score[best]:.3f})")
            ax.plot(x[best], score[best], "*", markersize=11, color=line.get_color())
    by_time.set_xlabel("wall-clock training time (hours)")
    by_epoch.set_xlabel("epoch")
    by_epoch.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in (by_time, by_epoch):
        ax.set_ylabel(metric.replace("_", " "))
        ax.grid(alpha=0.3)
    fig.legend(*by_time.get_legend_handles_labels(), loc="outside lower center", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_iou_per_class(iou, classes=None, *, title=None) -> Figure:
    """Horizontal bars of per-class IoU, with the mean over the defined values marked.

    `iou` is a sequence aligned with `classes`, or a dict ``{name: iou}`` (then
    `classes` only picks and orders the names). NaN, a class absent from both
    truth and prediction, is written "n/a" and left out of the mean.

    >>> fig = plot_iou_per_class([0.9, float("nan"), 0.5], ["background", "cat", "dog"])
    >>> fig.axes[0].get_title()
    'IoU per class (mean 0.700)'
    """
    names, values = _iou_table(iou, classes)
    defined = values[np.isfinite(values)]
    mean = float(defined.mean()) if defined.size else math.nan
    fig = Figure(figsize=(6.0, 0.28 * len(names) + 1.2), layout="constrained")
    ax = fig.subplots()
    rows = np.arange(len(names))
    ax.barh(rows, np.nan_to_num(values, nan=0.0), color="tab:blue", height=0.7)
    for row, value in zip(rows, values):
        label = f"{value:.2f}" if np.isfinite(value) else "n/a"
        ax.text(np.nan_to_num(value) + 0.01, row, label, va="center", fontsize=8)
    if np.isfinite(mean):
        ax.axvline(mean, color="tab:red", linestyle="--", linewidth=1.2)
    ax.set_yticks(rows, names)
    ax.invert_yaxis()
    ax.set_xlim(0.0, 1.1)
    ax.set_xticks(np.linspace(0.0, 1.0, 6))
    ax.set_xlabel("IoU")
    mean_text = f"mean {mean:.3f}" if np.isfinite(mean) else "mean n/a"
    ax.set_title(f"{title or 'IoU per class'} ({mean_text})")
    return fig


def plot_confusion_matrix(cm, classes, *, normalize=True) -> Figure:
    """Confusion matrix as an image: rows are the true class, columns the predicted one.

    With `normalize`, each row is divided by its pixel count, so the diagonal is
    the per-class recall; rows without pixels stay 0.

    >>> fig = plot_confusion_matrix([[8, 2], [0, 0]], ["background", "cat"])
    >>> fig.axes[0].images[0].get_array()[0].tolist()
    [0.8, 0.2]
    """
    cm = np.asarray(cm, np.float64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] != len(classes):
        raise ValueError(
            f"cm must be a square ({len(classes)}, {len(classes)}) matrix for "
            f"{len(classes)} classes, got shape {cm.shape}."
        )
    values = _normalize_rows(cm) if normalize else cm
    side = 0.35 * len(classes) + 2.5
    fig = Figure(figsize=(side + 1.2, side), layout="constrained")
    ax = fig.subplots()
    vmax = 1.0 if normalize else max(values.max(initial=0.0), 1.0)
    image = ax.imshow(values, cmap="Blues", vmin=0.0, vmax=vmax, interpolation="nearest")
    label = "fraction of true pixels" if normalize else "pixels"
    fig.colorbar(image, ax=ax, shrink=0.8, label=label)
    ticks = np.arange(len(classes))
    ax.set_xticks(ticks, classes, rotation=90)
    ax.set_yticks(ticks, classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("ground truth")
    ax.set_title("confusion matrix" + (" (rows normalised)" if normalize else ""))
    if len(classes) <= 30:
        _annotate_cells(ax, values, vmax, "{:.2f}" if normalize else "{:.3g}")
    return fig


def _read_history(history) -> dict[str, np.ndarray]:
    """Training logs as ``{name: 1-D float array}`` from a History, dict or CSVLogger file."""
    history = getattr(history, "history", history)
    if isinstance(history, (str, os.PathLike)):
        history = _read_csv_log(Path(history))
    elif isinstance(history, (list, tuple)) and history and all(isinstance(h, (str, os.PathLike)) for h in history):
        stages = [_read_csv_log(Path(h)) for h in history]
        history = {k: sum((stage.get(k, [np.nan] * len(stage["epoch"])) for stage in stages), []) for k in stages[0]}
        history.pop("epoch", None)
    if not isinstance(history, Mapping) or not history:
        raise ValueError(
            "history must be a Keras History, a non-empty History.history dict, "
            f"a CSVLogger file path or a list of them, got {type(history).__name__}."
        )
    logs = {str(k): np.asarray(v, np.float64).reshape(-1) for k, v in history.items()}
    _length(logs)
    return logs


def _read_csv_log(path: Path) -> dict[str, list[float]]:
    if not path.is_file():
        raise FileNotFoundError(f"Training log not found: {path}")
    rows = logged_epochs(path)
    if not rows:
        raise ValueError(f"Training log {path} has no epochs.")
    return {key: [_to_float(row[key]) for row in rows] for key in rows[0]}


def _to_float(text) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def _length(logs: dict[str, np.ndarray]) -> int:
    lengths = {name: len(values) for name, values in logs.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"History entries have different lengths: {lengths}.")
    return next(iter(lengths.values()))


def _plot_curves(ax, epochs, logs: dict[str, np.ndarray], name: str) -> None:
    """Each metric solid, its ``val_`` twin dashed in the same colour."""
    bases = list(dict.fromkeys(k.removeprefix("val_") for k in logs))
    for i, base in enumerate(bases):
        colour = f"C{i % 10}"
        for key, style in ((base, "-"), (f"val_{base}", "--")):
            if key in logs:
                ax.plot(epochs, logs[key], style, color=colour, marker=".", label=key)
    if "val_loss" in logs and np.isfinite(logs["val_loss"]).any():
        best = int(np.nanargmin(logs["val_loss"]))
        ax.plot(epochs[best], logs["val_loss"][best], "o", mfc="none", color="k", ms=9,
                label=f"best val_loss {logs['val_loss'][best]:.3g}")  # fmt: skip
    _style_epoch_axes(ax, name)
    ax.legend(fontsize=8)


def _plot_learning_rate(ax, epochs, lr: np.ndarray) -> None:
    ax.plot(epochs, lr, color="tab:gray", marker=".")
    if (lr > 0).all():
        ax.set_yscale("log")
    _style_epoch_axes(ax, "learning rate")


def _style_epoch_axes(ax, title: str) -> None:
    ax.set_title(title)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)


def _iou_table(iou, classes) -> tuple[list[str], np.ndarray]:
    if isinstance(iou, Mapping):
        names = list(iou) if classes is None else list(classes)
        values = [iou.get(name, math.nan) for name in names]
    else:
        values = np.asarray(iou, np.float64).reshape(-1)
        if classes is None or len(classes) != len(values):
            count = "no" if classes is None else len(classes)
            raise ValueError(f"Got {len(values)} IoU values but {count} class names.")
        names = list(classes)
    values = np.array([math.nan if v is None else v for v in values], np.float64)
    return names, values


def _normalize_rows(cm: np.ndarray) -> np.ndarray:
    totals = cm.sum(axis=1, keepdims=True)
    return np.divide(cm, totals, out=np.zeros_like(cm), where=totals > 0)


def _annotate_cells(ax, values: np.ndarray, vmax: float, fmt: str) -> None:
    size = 9 if len(values) <= 12 else 6
    for (row, col), value in np.ndenumerate(values):
        if value > 0:
            style = {"fontsize": size, "color": "white" if value > vmax / 2 else "black"}
            ax.text(col, row, fmt.format(value), ha="center", va="center", **style)
