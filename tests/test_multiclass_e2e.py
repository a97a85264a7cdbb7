"""End to end on a 4-class task as a new user brings it: its own TSV header and column names, string labels with
display names, classes a little imbalanced — every stage through the CLI, every student kind, every CPU backend."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from tests.conftest import ROOT, topic_task, write_config
from tinykd.benchmarks.tfidf_floor import TfidfFloor
from tinykd.config import DEFAULT_BACKENDS

pytestmark = pytest.mark.slow

NAMES = ["billing-issue", "late-delivery", "poor-quality", "refund-request"]
# One torch thread per stage: on 2 shared cores a second thread mostly spins (10-50x slower training seen).
SMALL = {"min_freq": 1, "embedding_dim": 16, "hidden_size": 16, "epochs": 8, "batch_size": 16, "learning_rate": 0.01,
         "threads": 1}
STUDENTS = [
    {"name": "bow", "kind": "bow", **SMALL},
    {"name": "cnn", "kind": "cnn", "tokens": "char", "num_filters": 8, "kernel_sizes": [2, 3], **SMALL},
    {"name": "lstm", "kind": "lstm", **SMALL},
    {"name": "tiny", "kind": "transformer", "layers": 1, "hidden": 32, "heads": 2, "intermediate": 64,
     "relation": {"heads": 2}, "threads": 1, "schedule": [
         {"stage": "task_relation", "epochs": 1, "batch_size": 16, "learning_rate": 1e-3},
         {"stage": "task_prediction", "epochs": 2, "batch_size": 16, "learning_rate": 1e-3}]},
]
# Timings too short to quote: the point is that every pair is served and reported. Every CPU backend is timed;
# the per-pair memory processes (seconds each) are left out.
BENCH = {"batch_sizes": [1, 4], "threads": [1], "rows": 16, "warmup_s": 0, "duration_s": 0.05, "repeats": 1,
         "min_calls": 4, "footprint": False}


def _tinykd(stage: str, config, runs) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "tinykd", stage, "--config", str(config), "--runs-dir", str(runs)],
                          cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_a_four_class_task_runs_every_stage_with_its_label_names(tmp_path, topic_files, topic_teacher):
    config = write_config(tmp_path / "topics.yaml", {
        "task": topic_task(topic_files),
        "teacher": {"base": str(topic_teacher), "epochs": 10, "batch_size": 16, "learning_rate": 3e-3, "threads": 1},
        "augment": {"multiplier": 1, "unk_token": "[UNK]"},
        "label": {"threads": 1},
        "students": STUDENTS,
        "compress": {"calibration_rows": 32, "eval_batch_size": 32, "threads": 1},
        "bench": BENCH,
    })
    started = time.perf_counter()
    done = _tinykd("all", config, tmp_path / "runs")
    print(f"tinykd all: {time.perf_counter() - started:.0f}s\n{done.stdout}")
    stages = ("data", "augment", "teacher", "label", "distill", "compress", "bench", "report")
    lines = [line for line in done.stdout.splitlines() if line.startswith(tuple(f"{s}:" for s in stages))]
    assert [line.split(":")[0] for line in lines] == list(stages), done.stdout
    run = tmp_path / "runs" / "topics"

    # The renamed columns were read and the labels mapped to ids in declared order (40/25/20/15 % of the rows).
    summary = json.loads((run / "data" / "summary.json").read_text())
    assert summary["label_counts"]["train"] == dict(zip(NAMES, [96, 60, 48, 36]))
    assert list(pd.read_parquet(run / "data" / "train.parquet").columns) == ["text_a", "label"]
    assert np.stack(pd.read_parquet(run / "label" / "test.parquet")["logits"]).shape == (80, 4)

    # Every saved model names the task's classes, and its head has one logit per class.
    saved = [run / "teacher" / "model", *(run / "students" / s["name"] / "model" for s in STUDENTS),
             *(run / "students" / "tiny" / "stages").glob("*/model")]
    assert len(saved) == 7  # teacher, 4 students, the transformer's 2 schedule stages
    for directory in saved:
        model_config = json.loads((directory / "config.json").read_text())
        assert model_config["id2label"] == {str(i): n for i, n in enumerate(NAMES)}, directory
        assert model_config["label2id"] == {n: i for i, n in enumerate(NAMES)}, directory

    # Test metrics of every trained model carry macro-F1 and F1 per class by name.
    for path in [run / "teacher" / "metrics.json", *(run / "students" / s["name"] / "metrics.json" for s in STUDENTS)]:
        test = json.loads(path.read_text())["test"]
        assert 0 <= test["macro_f1"] <= 1 and list(test["per_class"]) == NAMES, path
    assert json.loads((run / "students" / "lstm" / "metrics.json").read_text())["test"]["accuracy"] > 0.5

    # Every model through every CPU backend (no transformer fusions for BOW / CNN / LSTM), each judged with
    # macro-F1 and F1 per class; fp32 graphs keep the torch figures exactly.
    table = pd.read_csv(run / "compressed" / "summary.csv")
    models = ["teacher", *(s["name"] for s in STUDENTS)]
    expected = {(m, b) for m in models for b in DEFAULT_BACKENDS} - {(m, "onnx-optimized") for m in ("bow", "cnn", "lstm")}
    assert set(zip(table["model"], table["backend"])) == expected and table["macro_f1"].between(0, 1).all()
    for model, backend in expected:
        test = json.loads((run / "compressed" / model / backend / "metrics.json").read_text())["test"]
        assert list(test["per_class_f1"]) == NAMES, (model, backend)
        assert test["macro_f1"] == pytest.approx(np.mean(list(test["per_class_f1"].values())))
        assert sum(row["support"] for row in test["per_class"].values()) == 80
    fp32 = table[table["backend"].isin(["torch-fp32", "onnx-fp32"])].pivot(index="model", columns="backend",
                                                                            values="macro_f1")
    assert (fp32["torch-fp32"] == fp32["onnx-fp32"]).all(), fp32

    # The floor scores one column per declared class, in declared order.
    train, test_rows = pd.read_parquet(run / "data" / "train.parquet"), pd.read_parquet(run / "data" / "test.parquet")
    floor = TfidfFloor.fit(train, pair=False, num_labels=len(NAMES))
    assert floor(floor.encode(test_rows["text_a"].tolist(), None)).shape == (80, 4)
    results = pd.read_parquet(run / "bench" / "results.parquet")
    assert set(results["model"]) == {*models, "tfidf-lr"} and (results["qps"] > 0).all()
    served = results[results["model"] != "tfidf-lr"]
    assert set(served[served["model"] == "teacher"]["backend"]) == set(DEFAULT_BACKENDS)
    assert set(served[served["model"] == "bow"]["backend"]) == set(DEFAULT_BACKENDS) - {"onnx-optimized"}  # hf only
    assert results["requests_digest"].nunique() == 1 and results["macro_f1"].notna().all()

    # The report shows macro-F1 beside accuracy and the F1 of each class by name.
    report = (run / "report" / "report.md").read_text()
    header = next(line for line in report.splitlines() if line.startswith("| model "))
    assert re.search(r"\| accuracy\s+\|\s+macro-F1\s+\|", header), header
    bow = json.loads((run / "compressed" / "bow" / "onnx-int8-dynamic" / "metrics.json").read_text())["test"]
    bow_line = next(line for line in report.splitlines() if line.startswith("| bow ") and "onnx-int8-dynamic" in line)
    assert re.search(rf"\|\s*{bow['macro_f1']:.3f}\s*\|", bow_line), bow_line
    assert "## F1 per class" in report
    for name in NAMES:
        line = next(line for line in report.splitlines() if line.startswith(f"| {name} "))
        assert line.count("|") == 2 + 1 + len(models), line  # class, test rows, one column per model
    page = (run / "report" / "report.html").read_text()
    assert "macro-F1" in page and all(name in page for name in NAMES)

    # A build judged before F1 was recorded is judged again, not rebuilt.
    path = run / "compressed" / "cnn" / "onnx-int8-static" / "metrics.json"
    judged = json.loads(path.read_text())
    older = {k: v for k, v in judged["test"].items() if k not in ("macro_f1", "per_class_f1", "per_class",
                                                                     "confusion_matrix")}
    path.write_text(json.dumps(judged | {"test": older}))
    again = _tinykd("compress", config, tmp_path / "runs")
    assert f"({len(expected)} up to date)" in again.stdout, again.stdout
    assert json.loads(path.read_text()) == judged
