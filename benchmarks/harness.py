"""The timing harness of stage `bench`: how fast one model serves raw text on one backend, batch, length, thread count.

A *request* is one test row (text_a[, text_b]) in, one predicted label out. A *call* serves exactly
`batch` requests: tokenize them (truncated to `seq_len`), run the backend, take the argmax. Calls run
back to back (closed loop, one call in flight), so a call's latency is its service time, with no queueing.
A timed window ends with the first call that finishes after `duration_s`; that call is counted whole and
the window's elapsed time is measured up to its end, so `requests == calls * batch == qps * elapsed_s`.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import Counter
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from compress.backend import Runner
from compress.model_source import ModelSource
from tinykd.errors import ArtifactError

ShapeKey = tuple[tuple[str, tuple[int, ...]], ...]  # ((input name, shape), ...) of one call's inputs


@dataclass(frozen=True)
class Cell:
    """One point of the sweep."""

    model: str
    backend: str
    batch: int  # requests per call
    seq_len: int  # tokenizer truncation length
    threads: int  # intra-op threads of the backend


@dataclass(frozen=True)
class RequestRows:
    """The rows every cell serves in the same order: the test rows, cycled from the first one."""

    texts_a: tuple[str, ...]
    texts_b: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not self.texts_a:
            raise ArtifactError("no request rows: the test split is empty")
        if self.texts_b is not None and len(self.texts_b) != len(self.texts_a):
            raise ArtifactError(f"{len(self.texts_a)} text_a rows but {len(self.texts_b)} text_b rows")

    def __len__(self) -> int:
        return len(self.texts_a)

    def batches(self, batch: int) -> Iterator[tuple[list[str], list[str] | None]]:
        """Consecutive batches of `batch` rows, wrapping around the end, forever."""
        position, n = 0, len(self.texts_a)
        while True:
            index = [(position + i) % n for i in range(batch)]
            position = (position + batch) % n
            yield [self.texts_a[i] for i in index], None if self.texts_b is None else [self.texts_b[i] for i in index]


def shape_key(inputs: dict[str, np.ndarray]) -> ShapeKey:
    return tuple(sorted((name, tuple(array.shape)) for name, array in inputs.items()))


@contextlib.contextmanager
def pinned_threads(threads: int) -> Iterator[None]:
    """torch intra-op threads (and whether the Rust tokenizer may go parallel) fixed for the block, then restored.

    ONNX Runtime sessions take their intra-op thread count when the backend loads them.
    """
    torch_before, env_before = torch.get_num_threads(), os.environ.get("TOKENIZERS_PARALLELISM")
    torch.set_num_threads(threads)
    os.environ["TOKENIZERS_PARALLELISM"] = "true" if threads > 1 else "false"
    try:
        yield
    finally:
        torch.set_num_threads(torch_before)
        if env_before is None:
            os.environ.pop("TOKENIZERS_PARALLELISM", None)
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = env_before


@dataclass(frozen=True, eq=False)
class Window:
    """One timed window of back-to-back calls. Times are per call, in ms; the call latencies add up to elapsed_s."""

    batch: int
    calls: int
    elapsed_s: float  # measured: window start to the end of its last call (not the nominal duration)
    latency_ms: np.ndarray  # (calls,) end to end: tokenize + model + argmax (+ loop overhead)
    model_ms: np.ndarray  # (calls,) the backend runner alone
    tokenize_ms: np.ndarray  # (calls,) source.encode alone
    shapes: Counter  # ShapeKey -> calls with inputs of that shape

    @property
    def requests(self) -> int:
        return self.calls * self.batch

    @property
    def qps(self) -> float:
        return self.requests / self.elapsed_s

    @property
    def p99_ms(self) -> float:
        return float(np.percentile(self.latency_ms, 99))


def _check_logits(logits: np.ndarray, rows: int, cell: Cell) -> np.ndarray:
    if logits.ndim != 2 or logits.shape[0] != rows:
        raise ArtifactError(f"{cell.model}/{cell.backend}: the runner returned logits of shape {logits.shape} "
                            f"for a batch of {rows} rows; expected ({rows}, num_labels)")
    return logits


def time_window(source: ModelSource, runner: Runner, rows: RequestRows, cell: Cell, duration_s: float,
                min_calls: int = 1) -> Window:
    """Calls from the first row on, until `duration_s` has passed (and at least `min_calls` calls ran)."""
    latency, model, tokenize, shapes = [], [], [], Counter()
    batches = rows.batches(cell.batch)
    start = previous = time.perf_counter()
    while previous - start < duration_s or len(latency) < min_calls:
        texts_a, texts_b = next(batches)
        started = time.perf_counter()
        inputs = source.encode(texts_a, texts_b, cell.seq_len)
        tokenized = time.perf_counter()
        logits = runner(inputs)
        ran = time.perf_counter()
        _check_logits(np.asarray(logits), cell.batch, cell).argmax(axis=1)  # (B,) predicted labels
        finished = time.perf_counter()
        # Each call's latency runs from the previous call's end, so the latencies tile the window exactly.
        latency.append(finished - previous)
        tokenize.append(tokenized - started)
        model.append(ran - tokenized)
        shapes[shape_key(inputs)] += 1
        previous = finished
    ms = lambda values: np.asarray(values) * 1e3  # noqa: E731
    return Window(cell.batch, len(latency), previous - start, ms(latency), ms(model), ms(tokenize), shapes)


def warm_up(source: ModelSource, runner: Runner, rows: RequestRows, cell: Cell, warmup_s: float) -> int:
    """Untimed calls for `warmup_s` (at least one: first calls pay for allocations no server pays twice)."""
    return time_window(source, runner, rows, cell, warmup_s).calls


@dataclass(frozen=True, eq=False)
class CellTiming:
    """All timed windows (repeats) of one cell, and the figures a result row reports."""

    cell: Cell
    windows: tuple[Window, ...]

    @property
    def qps_repeats(self) -> list[float]:
        return [w.qps for w in self.windows]

    def _all(self, name: str) -> np.ndarray:
        return np.concatenate([getattr(w, name) for w in self.windows])

    def figures(self) -> dict[str, float | int | list]:
        """QPS as the median over repeats with its spread; latency percentiles over every call of every repeat."""
        qps = np.asarray(self.qps_repeats)
        latency, model, tokenize = self._all("latency_ms"), self._all("model_ms"), self._all("tokenize_ms")
        p50, p95, p99 = np.percentile(latency, [50, 95, 99])
        requests = sum(w.requests for w in self.windows)
        median = float(np.median(qps))
        return {
            "qps": median,
            "qps_min": float(qps.min()),
            "qps_max": float(qps.max()),
            "qps_std": float(qps.std(ddof=1)) if len(qps) > 1 else 0.0,
            "qps_spread_pct": float((qps.max() - qps.min()) / median * 100),
            "p50_ms": float(p50),
            "p95_ms": float(p95),
            "p99_ms": float(p99),
            "model_p50_ms": float(np.percentile(model, 50)),
            "model_p99_ms": float(np.percentile(model, 99)),
            "model_qps": requests / (model.sum() / 1e3),  # requests per second of backend time alone
            "tokenize_share": float(tokenize.sum() / latency.sum()),
            "requests": requests,
            "calls": sum(w.calls for w in self.windows),
            "elapsed_s": float(sum(w.elapsed_s for w in self.windows)),
            "qps_repeats": [float(v) for v in qps],
            "requests_repeats": [w.requests for w in self.windows],
            "elapsed_repeats_s": [float(w.elapsed_s) for w in self.windows],
            "p99_repeats_ms": [w.p99_ms for w in self.windows],
        }

    @property
    def shapes(self) -> Counter:
        total = Counter()
        for window in self.windows:
            total.update(window.shapes)
        return total

    @property
    def model_seconds(self) -> float:
        return float(sum(w.model_ms.sum() for w in self.windows) / 1e3)


def time_cell(source: ModelSource, runner: Runner, rows: RequestRows, cell: Cell, warmup_s: float,
              duration_s: float, repeats: int) -> CellTiming:
    """One cell on its own: warm-up, then `repeats` windows (the stage interleaves cells instead)."""
    windows = []
    with pinned_threads(cell.threads):
        for _ in range(repeats):
            warm_up(source, runner, rows, cell, warmup_s)
            windows.append(time_window(source, runner, rows, cell, duration_s))
    return CellTiming(cell, tuple(windows))


def example_inputs(source: ModelSource, rows: RequestRows, cell: Cell, shapes: set[ShapeKey]) -> dict[ShapeKey, dict]:
    """One real tokenized batch for each input shape the cell's calls had (for counting their FLOPs)."""
    found: dict[ShapeKey, dict] = {}
    period = len(rows) // np.gcd(len(rows), cell.batch)  # batches before the row cycle repeats
    for _, (texts_a, texts_b) in zip(range(period), rows.batches(cell.batch)):
        inputs = source.encode(texts_a, texts_b, cell.seq_len)
        key = shape_key(inputs)
        if key in shapes and key not in found:
            found[key] = inputs
            if len(found) == len(shapes):
                break
    return found
