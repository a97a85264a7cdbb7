"""Stage `bench` on a tiny run directory: results with their environment, verdicts, and clear errors."""

from __future__ import annotations

import json
import math
import sys
import types

import pandas as pd
import pytest

from tests.conftest import file_task, install_as_teacher, sentiment_rows, write_config
from tests.tiny_models import save_tiny_teacher
from tinykd.artifacts import RunPaths, write_json
from tinykd.benchmarks import gemm_peak, stage
from tinykd.compress.backend import BACKENDS, BackendInfo
from tinykd.config_loading import load_config
from tinykd.errors import ArtifactError, ConfigError

STUDENT = {"name": "tiny-s", "kind": "transformer", "schedule": [{"stage": "task_prediction", "data": "gold"}]}
BENCH = {"batch_sizes": [1, 4], "threads": [1], "rows": 20, "warmup_s": 0.05, "duration_s": 0.2, "repeats": 2,
         "min_calls": 6, "floor": False}  # the TF-IDF floor has its own test


def _config(tmp_path, files, **sections):
    return load_config(write_config(tmp_path / "c.yaml", {"task": file_task(files), "students": [STUDENT],
                                                           "bench": BENCH, **sections}))


def _run_dir(tmp_path, tiny_teacher, student=True, built=("torch-fp32",)) -> RunPaths:
    """A run as the earlier stages leave it: the test split, the models, their built backends and accuracy."""
    paths = RunPaths(tmp_path / "run")
    paths.data_dir.mkdir(parents=True)
    pd.DataFrame([{"text_a": text, "label": label} for label, text in sentiment_rows(30)]).to_parquet(paths.split("test"))
    train = sentiment_rows(200, seed=1)  # the TF-IDF floor's training rows
    pd.DataFrame([{"text_a": text, "label": label} for label, text in train]).to_parquet(paths.split("train"))
    install_as_teacher(paths, tiny_teacher)
    if student:
        save_tiny_teacher(paths.model_dir("tiny-s"), [text for _, text in sentiment_rows(360)], seed=1)
    for model, accuracy in (("teacher", {"test": {"accuracy": 0.9}}), ("tiny-s", {"accuracy": 0.8})):
        for backend in built:
            paths.compressed(model, backend).mkdir(parents=True)
            write_json(paths.compressed(model, backend) / "metrics.json", accuracy)
    return paths


@pytest.fixture
def fake_cuda_backend(monkeypatch):
    """torch-fp16-cuda as a module whose unavailable() says why, whatever compress/ holds today."""
    module = types.ModuleType("fake_cuda_backend")
    module.unavailable = lambda: "no CUDA device"
    monkeypatch.setitem(sys.modules, "fake_cuda_backend", module)
    monkeypatch.setitem(BACKENDS, "torch-fp16-cuda", BackendInfo("torch-fp16-cuda", "fake_cuda_backend", "cuda"))


def test_bench_writes_results_with_environment_and_a_verdict(tmp_path, sentiment_files, tiny_teacher,
                                                             fake_cuda_backend, monkeypatch):
    monkeypatch.setattr(gemm_peak, "GEMM_SIZES", (128,))
    config = _config(tmp_path, sentiment_files, compress={"backends": ["torch-fp32", "torch-fp16-cuda"]},
                     budget={"qps": 1, "p99_ms": 10000, "batch": 1, "threads": 1})
    paths = _run_dir(tmp_path, tiny_teacher)
    result = stage.run(config, paths)

    frame = pd.read_parquet(paths.bench_dir / "results.parquet")
    assert len(frame) == 4  # 2 models x 1 backend x 2 batch sizes x 1 length x 1 thread count
    assert set(zip(frame["model"], frame["batch"])) == {("teacher", 1), ("teacher", 4), ("tiny-s", 1), ("tiny-s", 4)}
    assert (frame["seq_len"] == 32).all() and (frame["threads"] == 1).all()  # default length: task.max_length
    # the default-backend pair that cannot run here is skipped with its reason, not an error
    assert [(s.model, s.backend, s.reason) for s in result.skipped] == [
        ("teacher", "torch-fp16-cuda", "no CUDA device"), ("tiny-s", "torch-fp16-cuda", "no CUDA device")]
    # Every cell served the same 20 requests (one seeded order) in whole passes, at least min_calls calls.
    assert frame["requests_digest"].nunique() == 1
    for _, r in frame.iterrows():
        assert r["requests"] == sum(r["requests_repeats"]) == r["calls"] * r["batch"] == r["passes"] * 20
        assert r["calls"] >= 6 and all(p >= 1 for p in r["passes_repeats"])
        assert all(round(q * e) == n for q, e, n in zip(r["qps_repeats"], r["elapsed_repeats_s"], r["requests_repeats"]))
        assert r["p50_ms"] <= r["p95_ms"] <= r["p99_ms"]
        assert r["peak_rss_mb"] > r["base_rss_mb"] > 0 and r["model_rss_mb"] > 0
        assert 0 < r["fraction_of_peak"] == pytest.approx(r["achieved_gflops"] / r["gemm_gflops"])
        assert r["peak_measurement_error"] == (r["fraction_of_peak"] > 1)  # torch-fp32 computes in the peak's dtype
    # Speed-ups over the teacher at the same cell: its torch fp32, and its fastest backend (here the same one).
    teacher = frame[frame["model"] == "teacher"].set_index("batch")["qps"]
    for _, r in frame.iterrows():
        assert r["speedup_vs_teacher_fp32"] == pytest.approx(r["qps"] / teacher[r["batch"]])
        assert r["speedup_vs_teacher_best"] == pytest.approx(r["qps"] / teacher[r["batch"]])
        assert r["teacher_best_backend"] == "torch-fp32"
    assert frame.groupby("model")["best_batch"].sum().tolist() == [1, 1]
    assert frame.set_index(["model", "batch"])["accuracy"].to_dict() == {
        ("teacher", 1): 0.9, ("teacher", 4): 0.9, ("tiny-s", 1): 0.8, ("tiny-s", 4): 0.8}
    assert (frame["size_mb"] > 0).all() and (frame["params"] > 0).all() and (frame["model_flops"] > 0).all()
    # every row says where and with what it was measured
    for column in ("cpu", "cores", "torch_version", "transformers_version", "onnxruntime_version", "config_hash",
                   "timestamp", "gemm_gflops"):
        assert frame[column].notna().all(), column
    assert frame["config_hash"].nunique() == 1 and frame["device"].eq("cpu").all()

    document = json.loads((paths.bench_dir / "results.json").read_text())
    assert len(document["rows"]) == 4 and document["environment"]["versions"]["torch"]
    assert document["skipped"][0]["reason"] == "no CUDA device"
    [peak] = document["gemm"]  # measured once per round (2 repeats), the best kept with every sample
    assert len(peak["samples"]) == 2 and peak["gflops"] == max(peak["samples"])
    assert frame["gemm_gflops"].eq(peak["gflops"]).all() and frame["gemm_spread_pct"].ge(0).all()
    verdicts = pd.read_csv(paths.bench_dir / "verdicts.csv")
    assert list(verdicts["model"]) == ["teacher", "tiny-s"] and verdicts["meets"].all()
    assert {"qps_margin_pct", "p99_margin_ms", "processes", "cores", "machines", "meets_alone",
            "allowed_machines"} <= set(verdicts.columns)
    assert document["ship"]["pick"]["model"] == "teacher"  # both meet; the teacher is more accurate
    summary = result.summary()
    assert summary.startswith("bench: 4 cells, 2 model × backend pairs (2 skipped); fp32 student forwards at ")
    assert "of the fp32 GEMM peak (best batch); ship teacher/torch-fp32: accuracy 90.00%" in summary


def test_a_missing_model_names_its_directory_and_stage(tmp_path, sentiment_files, tiny_teacher):
    config = _config(tmp_path, sentiment_files, compress={"backends": ["torch-fp32"]})
    paths = _run_dir(tmp_path, tiny_teacher, student=False)
    with pytest.raises(ArtifactError, match=r"students/tiny-s/model/config\.json: missing; run the 'distill' stage"):
        stage.run(config, paths)


def test_an_unbuilt_backend_names_its_directory_and_the_compress_stage(tmp_path, sentiment_files, tiny_teacher):
    config = _config(tmp_path, sentiment_files, compress={"backends": ["torch-fp32"]})
    paths = _run_dir(tmp_path, tiny_teacher, built=())
    with pytest.raises(ArtifactError, match=r"compressed/teacher/torch-fp32: missing; run the 'compress' stage"):
        stage.run(config, paths)


def test_a_requested_backend_that_cannot_run_here_is_an_error(tmp_path, sentiment_files, tiny_teacher, fake_cuda_backend):
    config = _config(tmp_path, sentiment_files, bench={**BENCH, "backends": ["torch-fp32", "torch-fp16-cuda"]})
    paths = _run_dir(tmp_path, tiny_teacher)
    with pytest.raises(ArtifactError, match="bench.backends: backend torch-fp16-cuda cannot run here: no CUDA device"):
        stage.run(config, paths)


def test_an_unknown_backend_is_an_error(tmp_path, sentiment_files, tiny_teacher):
    config = _config(tmp_path, sentiment_files)
    config = config.model_copy(update={"bench": config.bench.model_copy(update={"backends": ["torch-fp64"]})})
    with pytest.raises(ArtifactError, match="unknown backend 'torch-fp64'"):
        stage.run(config, _run_dir(tmp_path, tiny_teacher))


def test_a_budget_outside_the_sweep_is_a_config_error_at_load(tmp_path, sentiment_files):
    with pytest.raises(ConfigError, match=r"budget.batch.*8.*\[1, 4\]"):
        _config(tmp_path, sentiment_files, compress={"backends": ["torch-fp32"]},
                budget={"qps": 1, "p99_ms": 10, "batch": 8, "threads": 1})


def test_recorded_accuracy_reads_either_key_or_gives_nan(tmp_path):
    for payload, expected in (({"test": {"accuracy": 0.7}}, 0.7), ({"test.accuracy": 0.6}, 0.6),
                              ({"accuracy": 0.5}, 0.5), ({"size": 3}, math.nan)):
        write_json(tmp_path / "metrics.json", payload)
        assert stage.recorded_accuracy(tmp_path / "metrics.json") == pytest.approx(expected, nan_ok=True)
    assert math.isnan(stage.recorded_accuracy(tmp_path / "absent.json"))
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ArtifactError, match="bad.json: not valid JSON"):
        stage.recorded_accuracy(tmp_path / "bad.json")


def test_bench_adds_the_tfidf_floor_timed_like_the_models(tmp_path, sentiment_files, tiny_teacher, monkeypatch):
    monkeypatch.setattr(gemm_peak, "GEMM_SIZES", (128,))
    config = _config(tmp_path, sentiment_files, compress={"models": ["teacher"], "backends": ["torch-fp32"]},
                     bench={**BENCH, "floor": True})
    paths = _run_dir(tmp_path, tiny_teacher, student=False)
    frame = stage.run(config, paths, footprint=False).rows
    floor = frame[frame["model"] == "tfidf-lr"]
    assert list(floor["batch"]) == [1, 4] and (floor["backend"] == "sklearn").all()
    # The synthetic task hinges on one cue word: character n-grams learn it.
    assert (floor["accuracy"] >= 0.9).all() and (floor["macro_f1"] >= 0.9).all()
    assert (floor["requests"] == floor["calls"] * floor["batch"]).all() and (floor["qps"] > 0).all()
    assert floor["size_mb"].iat[0] > 0 and floor["params"].iat[0] > 0
    assert floor["config_hash"].iat[0] == frame["config_hash"].iat[0]
    assert frame["requests_digest"].nunique() == 1  # the floor served the models' requests
    teacher = frame[frame["model"] == "teacher"].set_index("batch")["qps"]
    assert list(floor["speedup_vs_teacher_fp32"]) == pytest.approx(list(floor["qps"] / teacher.loc[[1, 4]].values))
    no_floor = _config(tmp_path, sentiment_files, compress={"models": ["teacher"], "backends": ["torch-fp32"]},
                       bench={**BENCH, "floor": False})
    assert "tfidf-lr" not in set(stage.run(no_floor, paths, footprint=False).rows["model"])


def test_an_unchanged_bench_is_up_to_date_and_a_changed_sweep_measures_again(tmp_path, sentiment_files, tiny_teacher,
                                                                           monkeypatch):
    monkeypatch.setattr(gemm_peak, "GEMM_SIZES", (128,))
    config = _config(tmp_path, sentiment_files, compress={"models": ["teacher"], "backends": ["torch-fp32"]})
    paths = _run_dir(tmp_path, tiny_teacher, student=False)
    first = stage.run(config, paths, footprint=False)
    again = stage.run(config, paths, footprint=False)
    assert again.summary() == "bench: up to date"
    assert isinstance(first, stage.BenchResult)
    longer = _config(tmp_path, sentiment_files, compress={"models": ["teacher"], "backends": ["torch-fp32"]},
                     bench={**BENCH, "batch_sizes": [2]})
    assert list(stage.run(longer, paths, footprint=False).rows["batch"]) == [2]


def test_speedups_are_over_the_teachers_fp32_and_over_its_fastest_backend_at_the_same_cell():
    def row(model, backend, batch, qps, device="cpu"):
        return {"model": model, "backend": backend, "batch": batch, "seq_len": 64, "threads": 2, "device": device,
                "qps": qps}

    frame = pd.DataFrame([
        row("teacher", "torch-fp32", 1, 20.0), row("teacher", "onnx-int8-dynamic", 1, 80.0),
        row("teacher", "torch-fp32", 8, 10.0), row("teacher", "onnx-int8-dynamic", 8, 25.0),
        row("student", "onnx-int8-dynamic", 1, 400.0), row("student", "torch-fp32", 8, 100.0),
        row("teacher", "torch-fp16-cuda", 8, 500.0, "cuda"), row("student", "torch-fp16-cuda", 8, 1000.0, "cuda"),
    ])
    out = stage.with_speedups(frame).set_index(["model", "backend", "batch"])
    assert out.loc[("student", "onnx-int8-dynamic", 1), "speedup_vs_teacher_fp32"] == pytest.approx(20.0)
    assert out.loc[("student", "onnx-int8-dynamic", 1), "speedup_vs_teacher_best"] == pytest.approx(5.0)
    assert out.loc[("student", "torch-fp32", 8), "speedup_vs_teacher_best"] == pytest.approx(4.0)
    assert out.loc[("student", "torch-fp32", 8), "teacher_best_backend"] == "onnx-int8-dynamic"
    # On the GPU the fastest teacher is the GPU one; the CPU torch fp32 stays the as-deployed reference.
    assert out.loc[("student", "torch-fp16-cuda", 8), "speedup_vs_teacher_best"] == pytest.approx(2.0)
    assert out.loc[("student", "torch-fp16-cuda", 8), "speedup_vs_teacher_fp32"] == pytest.approx(100.0)
    assert out.loc[("teacher", "torch-fp32", 1), "speedup_vs_teacher_fp32"] == pytest.approx(1.0)
