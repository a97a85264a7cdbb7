"""Which model × backend `serve` and `load` use by default: the bench verdict's pick among tinykd models (never the
TF-IDF floor), and one line when there is none."""

from __future__ import annotations

import pytest

from tests.serving.tiny_run import served_run
from tinykd.artifacts import write_json
from tinykd.benchmarks.budget import judge
from tinykd.config import BudgetConfig
from tinykd.errors import ArtifactError, ConfigError
from tinykd.serving.target import default_target, served_model


def _verdict(model, backend, accuracy, qps, p99_ms=5.0):
    """The record the bench writes for a cell (1,000 qps at p99 <= 20 ms, one 2-core machine), None for NaN."""
    row = {"model": model, "backend": backend, "device": "cpu", "batch": 8, "threads": 2, "seq_len": 64,
           "accuracy": accuracy, "qps": qps, "p99_ms": p99_ms}
    record = judge(row, BudgetConfig(qps=1000, p99_ms=20, batch=8), machine_cores=2).record()
    return record | {"accuracy": None if accuracy != accuracy else accuracy}


def test_the_default_is_the_most_accurate_tinykd_model_meeting_the_budget(tmp_path, tiny_teacher, sentiment_files):
    config, paths = served_run(tmp_path, tiny_teacher, sentiment_files)
    write_json(paths.bench_dir / "results.json", {"verdicts": [
        _verdict("tfidf-lr", "sklearn", 0.95, 9000),  # the floor: a yardstick, not servable
        _verdict("teacher", "onnx-int8-dynamic", 0.93, 150, p99_ms=90.0),  # p99 over the bound
        _verdict("tiny", "onnx-int8-dynamic", 0.92, 500),  # needs 2 machines of the 1 allowed
        _verdict("cnn", "onnx-int8-static", 0.90, 4000), _verdict("bow", "onnx-int8-static", 0.90, 6000),
        _verdict("bow", "onnx-fp32", 0.89, 5000), _verdict("lstm", "onnx-fp32", float("nan"), 9000)]})
    assert default_target(config, paths) == ("bow", "onnx-int8-static")  # equal accuracy: the faster
    fp32 = config.model_copy(update={"serve": config.serve.model_copy(update={"backend": "onnx-fp32"})})
    assert default_target(fp32, paths) == ("bow", "onnx-fp32")  # a backend alone narrows the pick too
    only_cnn = config.model_copy(update={"serve": config.serve.model_copy(update={"model": "cnn"})})
    assert default_target(only_cnn, paths) == ("cnn", "onnx-int8-static")
    none_meet = config.model_copy(update={"serve": config.serve.model_copy(update={"model": "teacher"})})
    with pytest.raises(ConfigError, match="no model teacher meets the budget in the bench verdicts; set serve.model"):
        default_target(none_meet, paths)
    tiny_only = config.model_copy(update={"serve": config.serve.model_copy(update={"backend": "onnx-int8-dynamic"})})
    with pytest.raises(ConfigError, match="no backend onnx-int8-dynamic meets the budget"):
        default_target(tiny_only, paths)


def test_without_a_bench_or_a_build_the_error_names_the_stage(tmp_path, tiny_teacher, sentiment_files):
    config, paths = served_run(tmp_path, tiny_teacher, sentiment_files)
    with pytest.raises(ArtifactError, match=r"bench/results.json: missing; run the 'bench' stage"):
        default_target(config, paths)
    with pytest.raises(ArtifactError, match=r"compressed/teacher/onnx-fp32: missing; run the 'compress' stage"):
        served_model(config, paths, "teacher", "onnx-fp32")
    assert served_model(config, paths, "no-model", "none").labels == ("negative", "positive")
