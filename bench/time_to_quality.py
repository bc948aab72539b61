"""results/camvid/runs/time_to_quality.png: validation mean IoU against wall-clock training time and epochs.

Reads the CamVid runs' records in results/camvid/runs/ (``<run>_history.csv`` and
``<run>_metrics.json``, copied there from each run folder):

- the reference recipe, one stage;
- the project's first FCN-8s recipe, five stages chained (each stage starts
  from the previous one's best checkpoint, so its curve continues where the
  last stopped);
- the project's one-stage FCN-8s recipe;
- the shipped model, ``camvid-fcn8s``: the two-stage ``camvid`` recipe (its
  ``stage1/history.csv`` and ``history.csv``, in the model's folder).

Runs whose history has no ``epoch_seconds`` column (those trained before
`fcnseg.training.loop` logged it) are drawn with the run's ``train_seconds`` spread
evenly over its epochs. Each label names the CPU it ran on.

    python3 bench/time_to_quality.py            # writes results/camvid/runs/time_to_quality.png
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from fcnseg.figures.plots import plot_time_to_quality
from fcnseg.models.pretrained import model_file
from fcnseg.recipes import HISTORIES
from fcnseg.training.record import logged_epochs
from fcnseg.figures.viz import save_figure

RESULTS = Path(__file__).resolve().parent.parent / "results" / "camvid" / "runs"
CPU_A = "2-core AMD EPYC, AVX-512 BF16, mixed_bfloat16"
CPU_B = "2-core AMD EPYC, AVX2, float32"
SHIPPED = model_file("camvid-fcn8s").parent


def recorded(*names: str) -> list[Path]:
    """The history files of runs recorded in results/camvid/runs/ as ``<name>_history.csv``."""
    return [RESULTS / f"{name}_history.csv" for name in names]


RUNS = {
    f"reference recipe, FCN-32s ({CPU_A})": recorded("camvid_reference"),
    f"FCN-8s, 5 stages chained ({CPU_A})": recorded(*(f"camvid_fcn8s_stage{i}" for i in range(1, 6))),
    f"FCN-8s, one stage ({CPU_B})": recorded("camvid_fcn8s_onestage"),
    f"FCN-8s, one stage, blocks 1-3 frozen, fc 1024 ({CPU_B})": recorded("camvid_fcn8s_frozen3"),
    f"FCN-8s, camvid recipe, 2 stages: camvid-fcn8s ({CPU_A})": [SHIPPED / h for h in HISTORIES],
}


def load_run(histories: list[Path]) -> dict[str, list[float]]:
    """val_mean_iou and epoch_seconds of the training logs `histories`, one after the other; a log
    without epoch times takes its run's ``train_seconds`` (the ``..._metrics.json`` beside it)."""
    scores, seconds = [], []
    for history in histories:
        rows = logged_epochs(history)
        scores += [float(row["val_mean_iou"]) for row in rows]
        if all(row.get("epoch_seconds") for row in rows):
            seconds += [float(row["epoch_seconds"]) for row in rows]
        else:
            metrics = json.loads(history.with_name(history.name.replace("history.csv", "metrics.json")).read_text())
            seconds += [metrics["train_seconds"] / len(rows)] * len(rows)
    return {"val_mean_iou": scores, "epoch_seconds": seconds}


def main() -> int:
    runs = {label: load_run(files) for label, files in RUNS.items() if all(f.is_file() for f in files)}
    fig = plot_time_to_quality(runs, title="CamVid, validation mean IoU (the Keras metric on val crops/frames); "
                                           "encoder: vgg16_hed_bsds500_notop.h5")  # fmt: skip
    print(save_figure(fig, RESULTS / "time_to_quality.png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
