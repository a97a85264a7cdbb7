"""The timing harness: what a request is, how requests are counted, and what the figures mean."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from benchmarks.harness import Cell, RequestRows, pinned_threads, time_cell, time_window
from compress import torch_fp32
from compress.model_source import ModelSource
from tests.conftest import sentiment_rows

ROWS = RequestRows(tuple(text for _, text in sentiment_rows(10)))


@pytest.fixture
def teacher(tiny_teacher):
    source = ModelSource("teacher", tiny_teacher, "hf", pair=False)
    return source, torch_fp32.load(source, tiny_teacher, threads=1)


class SlowRunner:
    """A backend that takes `seconds` per call: makes the end-of-window rule checkable."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __call__(self, inputs):
        time.sleep(self.seconds)
        return np.zeros((len(inputs["input_ids"]), 2), dtype=np.float32)


def test_rows_are_cycled_in_order_across_batches():
    rows = RequestRows(("a", "b", "c", "d", "e"), ("A", "B", "C", "D", "E"))
    batches = rows.batches(2)
    assert [next(batches) for _ in range(3)] == [(["a", "b"], ["A", "B"]), (["c", "d"], ["C", "D"]),
                                                  (["e", "a"], ["E", "A"])]


def test_completed_requests_equal_qps_times_measured_duration(teacher):
    source, runner = teacher
    cell = Cell("teacher", "torch-fp32", batch=3, seq_len=8, threads=1)  # 3 does not divide the 10 rows
    window = time_window(source, runner, ROWS, cell, duration_s=0.2)
    assert window.requests == window.calls * 3
    assert round(window.qps * window.elapsed_s) == window.requests
    assert window.elapsed_s >= 0.2
    # The latencies tile the window: its elapsed time is theirs, not the nominal duration.
    assert window.latency_ms.sum() / 1e3 == pytest.approx(window.elapsed_s, rel=1e-9)
    assert np.all(window.model_ms + window.tokenize_ms <= window.latency_ms)
    # Tokenization truncates to seq_len: no call saw longer inputs.
    assert all(shape[1] <= 8 for key in window.shapes for _, shape in key)
    assert sum(window.shapes.values()) == window.calls


def test_the_call_that_crosses_the_deadline_counts_whole(tiny_teacher):
    source = ModelSource("teacher", tiny_teacher, "hf", pair=False)
    cell = Cell("teacher", "slow", batch=4, seq_len=8, threads=1)
    window = time_window(source, SlowRunner(0.05), ROWS, cell, duration_s=0.12)
    last_call_started = window.elapsed_s - window.latency_ms[-1] / 1e3
    assert last_call_started < 0.12 <= window.elapsed_s  # started before the deadline, ended after it
    assert window.calls >= 2 and window.requests == 4 * window.calls
    assert window.qps == pytest.approx(window.requests / window.elapsed_s)


def test_figures_aggregate_repeats(teacher):
    source, runner = teacher
    timing = time_cell(source, runner, ROWS, Cell("teacher", "torch-fp32", 2, 16, 1), warmup_s=0.05,
                       duration_s=0.15, repeats=3)
    figures = timing.figures()
    assert figures["p50_ms"] <= figures["p95_ms"] <= figures["p99_ms"]
    assert figures["model_p50_ms"] <= figures["p50_ms"]
    assert figures["qps_min"] <= figures["qps"] <= figures["qps_max"]
    assert figures["qps"] == pytest.approx(float(np.median(figures["qps_repeats"])))
    assert figures["requests"] == sum(figures["requests_repeats"]) == 2 * figures["calls"]
    for qps, requests, elapsed in zip(figures["qps_repeats"], figures["requests_repeats"], figures["elapsed_repeats_s"]):
        assert round(qps * elapsed) == requests
    assert figures["model_qps"] > figures["qps"]  # the model alone is faster than tokenize + model
    assert 0 < figures["tokenize_share"] < 1


def test_threads_are_pinned_for_the_block_and_restored():
    before = torch.get_num_threads()
    with pinned_threads(2):
        assert torch.get_num_threads() == 2
    assert torch.get_num_threads() == before
