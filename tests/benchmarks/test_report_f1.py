"""The report's macro-F1 column and F1-per-class table: the compress stage's figures for the benchmarked builds."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from tinykd.artifacts import RunPaths, write_json
from tinykd.benchmarks.report import per_class_f1_table, with_macro_f1

NAMES = ["billing-issue", "late-delivery", "refund-request"]


def _judged(paths: RunPaths, model: str, backend: str, f1: list[float], support=(5, 3, 2)) -> None:
    write_json(paths.compressed(model, backend) / "metrics.json", {"test": {
        "accuracy": 0.8, "macro_f1": sum(f1) / len(f1), "rows": sum(support),
        "per_class_f1": dict(zip(NAMES, f1)),
        "per_class": {n: {"f1": f, "support": s} for n, f, s in zip(NAMES, f1, support)}}})


def test_macro_f1_comes_from_each_builds_compress_metrics_unless_the_bench_row_has_it(tmp_path):
    paths = RunPaths(tmp_path / "run")
    _judged(paths, "teacher", "torch-fp32", [0.9, 0.6, 0.3])
    _judged(paths, "bow", "torch-fp32", [0.8, 0.5, 0.0])
    _judged(paths, "bow", "onnx-int8-dynamic", [0.8, 0.2, 0.2])
    table = pd.DataFrame({"model": ["teacher", "bow", "bow", "tfidf-lr"],
                          "backend": ["torch-fp32", "torch-fp32", "onnx-int8-dynamic", "sklearn"]})
    filled = with_macro_f1(table, paths)["macro_f1"].tolist()
    assert filled[:3] == pytest.approx([0.6, 1.3 / 3, 0.4])  # per backend: int8 changed bow's F1
    assert math.isnan(filled[3])  # the floor has no build
    recorded = table.assign(macro_f1=[math.nan, math.nan, math.nan, 0.75])  # a bench that records the floor's
    assert with_macro_f1(recorded, paths)["macro_f1"].iat[3] == 0.75


def test_per_class_table_names_every_declared_class_for_every_model(tmp_path):
    paths = RunPaths(tmp_path / "run")
    _judged(paths, "teacher", "torch-fp32", [0.9, 0.6, 0.3])
    _judged(paths, "tiny", "onnx-int8-dynamic", [1.0, 0.5, 0.0])  # benchmarked without its fp32 row
    table = pd.DataFrame({"model": ["teacher", "teacher", "tiny", "tfidf-lr"],
                          "backend": ["torch-fp32", "onnx-int8-dynamic", "onnx-int8-dynamic", "sklearn"]})
    shown = per_class_f1_table(table, paths, NAMES)
    assert list(shown.columns) == ["class", "test rows", "teacher", "tiny (onnx-int8-dynamic)"]
    assert shown["class"].tolist() == [*NAMES, "macro-F1"] and shown["test rows"].tolist() == ["5", "3", "2", "10"]
    assert shown["teacher"].tolist() == ["0.900", "0.600", "0.300", "0.600"]
    assert shown["tiny (onnx-int8-dynamic)"].tolist() == ["1.000", "0.500", "0.000", "0.500"]
    assert per_class_f1_table(table[table["model"] == "tfidf-lr"], paths, NAMES).empty  # nothing judged: no table
