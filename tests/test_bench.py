"""Smoke test of bench/bench.py: the tiny configuration runs end to end and prints JSON figures;
bench/reference_twin.py scores as the reference notebook does.

No timing is checked (the numbers depend on the machine and its load), only
that every stdout line is a JSON figure and that every expected figure is there
with a positive, finite value. Runs the script from another working directory,
so it must find the project on its own. About 20-40 s on 2 CPU cores.
"""

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 120

EXPECTED = {
    "matmul_gflop_per_s",
    "pipeline_images_per_s",
    "forward_gflop_per_image",
    "infer_images_per_s",
    "train_images_per_s",
    "train_peak_rss",
    "train_achieved_gflop_per_s",
    "train_vs_matmul_ratio",
    "pipeline_to_train_ratio",
}


def cpuinfo_flags() -> set[str]:
    """The flags of the first CPU in /proc/cpuinfo (none where the file is missing, e.g. macOS)."""
    path = Path("/proc/cpuinfo")
    lines = path.read_text().splitlines() if path.is_file() else []
    return next((set(l.split(":", 1)[1].split()) for l in lines if l.startswith("flags")), set())


def run_tiny(cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [sys.executable, str(ROOT / "bench" / "bench.py"), "--tiny"]
    # Own process group: on a timeout the benchmark's child processes are ended too.
    with subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, start_new_session=True) as proc:
        try:
            out, err = proc.communicate(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            raise AssertionError(f"bench.py --tiny took over {TIMEOUT_S} s; stderr tail:\n{err[-3000:]}")
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


def test_bench_tiny_prints_one_json_figure_per_line(tmp_path):
    result = run_tiny(tmp_path)
    assert result.returncode == 0, f"exit {result.returncode}; stderr tail:\n{result.stderr[-3000:]}"

    lines = [line for line in result.stdout.splitlines() if line.strip()]
    records = []
    for line in lines:
        record = json.loads(line)  # every stdout line is JSON
        assert isinstance(record, dict) and "figure" in record, line
        records.append(record)

    figures = [r["figure"] for r in records]
    assert "error" not in figures, [r for r in records if r["figure"] == "error"]
    assert figures.count("environment") == 1
    env = next(r for r in records if r["figure"] == "environment")
    for key in ("cpu_count", "tensorflow", "keras", "cpu_flags", "gpu_present"):
        assert key in env
    # The flags it reports are the CPU's, read here from /proc/cpuinfo.
    flags = cpuinfo_flags()
    assert set(env["cpu_flags"]) >= {"avx2", "avx512_bf16", "amx_tile", "amx_bf16"}
    assert env["cpu_flags"] == {name: name in flags for name in env["cpu_flags"]}
    assert env["amx"] == ("amx_tile" in flags)

    missing = EXPECTED - set(figures)
    assert not missing, f"figures missing: {sorted(missing)}"
    for record in records:
        if record["figure"] == "environment":
            continue
        value = record.get("value")
        assert isinstance(value, (int, float)) and math.isfinite(value) and value > 0, record
        assert record.get("unit"), record

    def values(figure, key):
        return {json.dumps(r.get(key)) for r in records if r["figure"] == figure}

    assert values("pipeline_images_per_s", "cache") == {"true", "false"}
    assert values("infer_images_per_s", "batch") == {"1", "8"}
    assert values("train_images_per_s", "size") == {"[64, 64]"}
    assert values("train_images_per_s", "variant") == {'"fcn32s"'}
    for record in records:
        if record["figure"] in ("train_achieved_gflop_per_s", "train_vs_matmul_ratio"):
            assert record["flops_convention"] == "train = 3 x forward"


def test_reference_twin_scores_as_the_reference_notebook_does():
    """bench/reference_twin.py's metric is sklearn's weighted Jaccard per batch of 10, averaged over
    batches (the reference notebook's "val IoU"), here computed again from confusion matrices."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("reference_twin", ROOT / "bench" / "reference_twin.py")
    twin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(twin)
    rng = np.random.default_rng(0)
    truth = rng.choice(4, size=(23, 8, 8), p=[0.7, 0.1, 0.1, 0.1])
    predicted = np.where(rng.random(truth.shape) < 0.6, truth, rng.integers(0, 5, truth.shape))

    def weighted_jaccard(p, t):
        cm = np.bincount(t.ravel() * 5 + p.ravel(), minlength=25).reshape(5, 5)
        present = (cm.sum(0) + cm.sum(1)) > 0
        iou = np.diag(cm)[present] / (cm.sum(0) + cm.sum(1) - np.diag(cm))[present]
        return float((iou * cm.sum(1)[present]).sum() / cm.sum())

    batches = range(0, len(truth), twin.BATCH)  # 10, 10 and 3 images
    expected = np.mean([weighted_jaccard(predicted[i : i + twin.BATCH], truth[i : i + twin.BATCH]) for i in batches])
    assert twin.reference_metric(predicted, truth) == pytest.approx(expected)
    background = twin.reference_metric(np.zeros_like(truth), truth)  # all background: about its share squared
    assert 0.4 < background < 0.6


def test_reference_twin_score_keep_adds_to_the_rows_already_scored(voc_root, vgg_weights, tmp_path):
    """``score --keep`` rescores what its run folders hold (here only the all-background map) and
    keeps the other rows of ``--out``, scored earlier from run folders that are gone."""
    out = tmp_path / "twin.json"
    earlier = {"voc2007": {"mean_iou": 0.25}, "all_background": {"mean_iou": -1.0}}
    out.write_text(json.dumps({"models": earlier}))
    command = [sys.executable, str(ROOT / "bench" / "reference_twin.py"), "score", "--work", str(tmp_path / "none"),
               "--keep", "--out", str(out)]  # fmt: skip
    env = {**os.environ, "VOC_ROOT": str(voc_root), "FCN_BACKBONE_WEIGHTS": str(vgg_weights)}
    subprocess.run(command, env=env, check=True, timeout=600, capture_output=True, cwd=tmp_path)  # 213 masks, twice
    models = json.loads(out.read_text())["models"]
    assert models["voc2007"] == {"mean_iou": 0.25}
    assert set(models) == {"voc2007", "all_background"}
    assert 0 < models["all_background"]["mean_iou"] < 1 and len(models["all_background"]["iou_per_class"]) == 21
