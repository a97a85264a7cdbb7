"""The timing harness: what a request is, how requests are counted, and what the figures mean."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from tests.conftest import sentiment_rows
from tinykd.benchmarks.harness import Cell, RequestSequence, pinned_threads, time_cell, time_window, warm_up
from tinykd.compress import torch_fp32
from tinykd.compress.model_source import ModelSource
from tinykd.errors import ArtifactError

ROWS = RequestSequence(tuple(text for _, text in sentiment_rows(12)))


@pytest.fixture
def teacher(tiny_teacher):
    source = ModelSource("teacher", tiny_teacher, "hf", pair=False)
    return source, torch_fp32.load(source, tiny_teacher, threads=1)


class SlowRunner:
    """A backend that takes `seconds` per call and remembers the inputs of each call."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.seen: list[np.ndarray] = []

    def __call__(self, inputs):
        time.sleep(self.seconds)
        self.seen.append(inputs["input_ids"])
        return np.zeros((len(inputs["input_ids"]), 2), dtype=np.float32)


def test_the_sequence_is_seeded_and_cut_to_whole_calls_of_every_batch_size():
    texts = tuple(f"row {i}" for i in range(50))
    sequence = RequestSequence.seeded(texts, None, batch_sizes=[1, 4, 6], seed=3)
    assert len(sequence) == 48  # the largest multiple of lcm(1, 4, 6) = 12 in 50 rows
    assert sorted(sequence.row_ids) != list(sequence.row_ids)  # shuffled ...
    assert len(set(sequence.row_ids)) == 48 and set(sequence.row_ids) <= set(range(50))  # ... without repeats
    assert [sequence.texts_a[i] for i in range(48)] == [f"row {r}" for r in sequence.row_ids]
    again = RequestSequence.seeded(texts, None, batch_sizes=[1, 4, 6], seed=3)
    assert again.row_ids == sequence.row_ids and again.digest() == sequence.digest()
    assert RequestSequence.seeded(texts, None, batch_sizes=[1, 4, 6], seed=4).digest() != sequence.digest()
    # Another task's rows in the same order (same row ids) are other work: the digest names the texts.
    other = RequestSequence.seeded(tuple(f"review {i}" for i in range(50)), None, batch_sizes=[1, 4, 6], seed=3)
    assert other.row_ids == sequence.row_ids and other.digest() != sequence.digest()
    paired = RequestSequence.seeded(texts, texts, batch_sizes=[1, 4, 6], seed=3)
    assert paired.digest() != sequence.digest()  # a pair task's second texts count too
    assert [len(sequence.call(c)[0]) for c in sequence.calls(6)] == [6] * 8
    with pytest.raises(ArtifactError, match="a pass needs a multiple of 12 rows"):
        RequestSequence.seeded(texts[:10], None, batch_sizes=[4, 6], seed=0)


def test_pairs_keep_their_two_texts_together():
    sequence = RequestSequence.seeded(("a", "b", "c", "d"), ("A", "B", "C", "D"), batch_sizes=[2], seed=1)
    for where in sequence.calls(2):
        texts_a, texts_b = sequence.call(where)
        assert [b.lower() for b in texts_b] == texts_a


def test_a_slow_and_a_fast_runner_serve_identical_request_sequences(tiny_teacher):
    """The same requests for every model, however fast: a window covers whole passes of one sequence, so a
    model that manages one pass in its window served exactly the rows a fast one served in each of its passes
    (the old harness restarted at row 0 and let the deadline cut the fast and the slow model at different rows)."""
    source = ModelSource("teacher", tiny_teacher, "hf", pair=False)
    requests = RequestSequence.seeded(tuple(text for _, text in sentiment_rows(40)), None, [1, 4], seed=7)
    pass_ids = np.asarray(requests.row_ids)
    cell = Cell("teacher", "stub", batch=4, seq_len=16, threads=1)
    slow = time_window(source, SlowRunner(0.01), requests, cell, duration_s=0.01)
    fast = time_window(source, SlowRunner(0.0), requests, cell, duration_s=0.5)  # several passes even on a busy machine
    assert slow.passes == 1 and fast.passes > 1
    assert np.array_equal(slow.row_ids, pass_ids)  # the whole sequence, though the deadline came after one call
    assert np.array_equal(fast.row_ids, np.tile(pass_ids, fast.passes))
    assert slow.requests == len(requests) and fast.requests == fast.passes * len(requests)
    # And across batch sizes: calls of 1 row cover the same rows in the same order.
    single = time_window(source, SlowRunner(0.0), requests, Cell("teacher", "stub", 1, 16, 1), duration_s=0.0)
    assert np.array_equal(single.row_ids, pass_ids)


def test_min_calls_extends_a_window_by_whole_passes(tiny_teacher):
    source = ModelSource("teacher", tiny_teacher, "hf", pair=False)
    cell = Cell("teacher", "stub", batch=4, seq_len=8, threads=1)  # 12 rows: 3 calls per pass
    window = time_window(source, SlowRunner(0.0), ROWS, cell, duration_s=0.0, min_calls=7)
    assert (window.calls, window.passes, window.requests) == (9, 3, 36)  # 7 calls round up to 3 whole passes
    timing = time_cell(source, SlowRunner(0.0), ROWS, cell, warmup_s=0.0, duration_s=0.0, repeats=2, min_calls=7)
    figures = timing.figures()
    assert figures["calls"] == 12 and figures["passes_repeats"] == [2, 2]  # ceil(7 / 2) = 4 calls per window


def test_warm_up_does_not_run_the_first_timed_call(tiny_teacher):
    source = ModelSource("teacher", tiny_teacher, "hf", pair=False)
    runner = SlowRunner(0.0)
    cell = Cell("teacher", "stub", batch=4, seq_len=32, threads=1)
    assert warm_up(source, runner, ROWS, cell, warmup_s=0.0) == 1
    first_call = source.encode(*ROWS.call(ROWS.calls(4)[0]), 32)["input_ids"]
    last_call = source.encode(*ROWS.call(ROWS.calls(4)[-1]), 32)["input_ids"]
    assert np.array_equal(runner.seen[0], last_call) and not np.array_equal(runner.seen[0], first_call)


def test_completed_requests_equal_qps_times_measured_duration(teacher):
    source, runner = teacher
    cell = Cell("teacher", "torch-fp32", batch=3, seq_len=8, threads=1)
    window = time_window(source, runner, ROWS, cell, duration_s=0.2)
    assert window.requests == window.calls * 3 == window.passes * 12
    assert round(window.qps * window.elapsed_s) == window.requests
    assert window.elapsed_s >= 0.2
    # The latencies tile the window: its elapsed time is theirs, not the nominal duration.
    assert window.latency_ms.sum() / 1e3 == pytest.approx(window.elapsed_s, rel=1e-9)
    assert np.all(window.model_ms + window.tokenize_ms <= window.latency_ms)
    # Tokenization truncates to seq_len: no call saw longer inputs.
    assert all(shape[1] <= 8 for key in window.shapes for _, shape in key)
    assert sum(window.shapes.values()) == window.calls


def test_the_window_ends_with_the_pass_that_crosses_the_deadline(tiny_teacher):
    source = ModelSource("teacher", tiny_teacher, "hf", pair=False)
    cell = Cell("teacher", "slow", batch=4, seq_len=8, threads=1)  # 3 calls of >= 0.02 s per pass of 12 rows
    # The deadline falls in the second pass: after >= 0.06 s of the first (up to ~0.09 s on a busy machine).
    window = time_window(source, SlowRunner(0.02), ROWS, cell, duration_s=0.1)
    last_pass_started = window.elapsed_s - window.latency_ms[-3:].sum() / 1e3
    assert last_pass_started < 0.1 <= window.elapsed_s  # the last pass started before the deadline, ended after
    assert window.passes == 2 and window.calls == 6 and window.requests == 24
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
    assert figures["passes"] == sum(figures["passes_repeats"]) == figures["requests"] // 12
    for qps, requests, elapsed in zip(figures["qps_repeats"], figures["requests_repeats"], figures["elapsed_repeats_s"]):
        assert round(qps * elapsed) == requests
    # The model alone is faster than tokenize + model, pooled over the same windows (the median `qps` of the repeats
    # is not: one slow window on a busy machine drags the pooled model rate under it).
    assert figures["model_qps"] > figures["requests"] / figures["elapsed_s"]
    assert 0 < figures["tokenize_share"] < 1


def test_threads_are_pinned_for_the_block_and_restored():
    before = torch.get_num_threads()
    with pinned_threads(2):
        assert torch.get_num_threads() == 2
    assert torch.get_num_threads() == before
