"""The timing harness of stage `bench`: how fast one model serves raw text on one backend, batch, length, thread count.

A *request* is one test row (text_a[, text_b]) in, one predicted label out. A *call* serves exactly
`batch` requests: tokenize them (truncated to `seq_len`), run the backend, take the argmax. Calls run
back to back (closed loop, one call in flight), so a call's latency is its service time, with no queueing.

Every cell serves the same work: one seeded sequence of requests (`RequestSequence`), cut to a multiple
of every batch size, served in *whole passes*. A pass is the sequence split into consecutive calls of
`batch` requests; a timed window runs passes until `duration_s` has passed **and** it holds at least
`min_calls` calls, then stops at the end of that pass. So a slow model and a fast one serve the same
requests in the same order (the fast one just serves more passes), `duration_s` is a minimum rather than
a cap, and `requests == calls * batch == qps * elapsed_s`.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import time
from collections import Counter
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import pandas as pd
import torch

from tinykd.artifacts import RunPaths, require
from tinykd.compress.backend import Runner
from tinykd.compress.model_source import ModelSource
from tinykd.config import Config
from tinykd.errors import ArtifactError, DataError
from tinykd.task_rows import text_columns

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
class RequestSequence:
    """The requests every cell serves, in this order: test rows by their row id in the test split.

    Built by `RequestSequence.seeded`: a seeded shuffle of the first rows, cut to a multiple of every batch
    size, so a pass splits into whole calls at every batch size and every cell's pass is the same requests.
    """

    texts_a: tuple[str, ...]
    texts_b: tuple[str, ...] | None = None
    row_ids: tuple[int, ...] | None = None  # test-split row id of each request; default 0..n-1

    def __post_init__(self) -> None:
        if not self.texts_a:
            raise ArtifactError("no request rows: the test split is empty")
        if self.texts_b is not None and len(self.texts_b) != len(self.texts_a):
            raise ArtifactError(f"{len(self.texts_a)} text_a rows but {len(self.texts_b)} text_b rows")
        if self.row_ids is None:
            object.__setattr__(self, "row_ids", tuple(range(len(self.texts_a))))
        elif len(self.row_ids) != len(self.texts_a):
            raise ArtifactError(f"{len(self.texts_a)} requests but {len(self.row_ids)} row ids")

    @classmethod
    def seeded(cls, texts_a: tuple[str, ...], texts_b: tuple[str, ...] | None, batch_sizes: list[int],
               seed: int) -> "RequestSequence":
        """All rows given, shuffled with `seed`, cut to the largest multiple of every batch size (their lcm)."""
        step = math.lcm(*batch_sizes)
        if len(texts_a) < step:
            raise ArtifactError(f"{len(texts_a)} test rows cannot fill one call of each batch size {batch_sizes} "
                                f"whole: a pass needs a multiple of {step} rows (raise bench.rows, or use smaller "
                                "batch sizes)")
        order = np.random.default_rng(seed).permutation(len(texts_a))[: len(texts_a) // step * step]
        return cls(tuple(texts_a[i] for i in order), None if texts_b is None else tuple(texts_b[i] for i in order),
                   tuple(int(i) for i in order))

    def __len__(self) -> int:
        return len(self.texts_a)

    def digest(self) -> str:
        """Names the request sequence, its texts in order (not only their row ids, which every task's first
        `bench.rows` rows share): equal digests, equal work."""
        digest = hashlib.sha256()
        for i, text in enumerate(self.texts_a):
            pair = "" if self.texts_b is None else self.texts_b[i]
            digest.update(f"{text}\x1f{pair}\x1e".encode())
        return digest.hexdigest()[:16]

    def calls(self, batch: int) -> list[slice]:
        """One pass: the sequence as consecutive calls of `batch` requests."""
        if len(self) % batch:
            raise ArtifactError(f"a pass of {len(self)} requests does not split into whole calls of {batch}")
        return [slice(start, start + batch) for start in range(0, len(self), batch)]

    def call(self, where: slice) -> tuple[list[str], list[str] | None]:
        return list(self.texts_a[where]), None if self.texts_b is None else list(self.texts_b[where])


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
    """One timed window of back-to-back calls over whole passes. Times are per call, in ms; the call latencies
    add up to elapsed_s."""

    batch: int
    calls: int
    passes: int  # whole passes over the request sequence
    elapsed_s: float  # measured: window start to the end of its last call (not the nominal duration)
    latency_ms: np.ndarray  # (calls,) end to end: tokenize + model + argmax (+ loop overhead)
    model_ms: np.ndarray  # (calls,) the backend runner alone
    tokenize_ms: np.ndarray  # (calls,) source.encode alone
    shapes: Counter  # ShapeKey -> calls with inputs of that shape
    row_ids: np.ndarray  # (requests,) the test row id of every request served, in order

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


def time_window(source: ModelSource, runner: Runner, requests: RequestSequence, cell: Cell, duration_s: float,
                min_calls: int = 1) -> Window:
    """Whole passes over `requests` until `duration_s` has passed and at least `min_calls` calls ran."""
    latency, model, tokenize, shapes = [], [], [], Counter()
    calls, passes = requests.calls(cell.batch), 0
    start = previous = time.perf_counter()
    while previous - start < duration_s or len(latency) < min_calls:
        for where in calls:
            texts_a, texts_b = requests.call(where)
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
        passes += 1
    ms = lambda values: np.asarray(values) * 1e3  # noqa: E731
    row_ids = np.tile(np.asarray(requests.row_ids), passes)
    return Window(cell.batch, len(latency), passes, previous - start, ms(latency), ms(model), ms(tokenize), shapes,
                  row_ids)


def warm_up(source: ModelSource, runner: Runner, requests: RequestSequence, cell: Cell, warmup_s: float) -> int:
    """Untimed calls for `warmup_s` (at least one: first calls pay for allocations no server pays twice).

    They take the pass's calls from its last one backwards, so the first timed call is not the batch the
    warm-up has just run."""
    done, started = 0, time.perf_counter()
    calls = requests.calls(cell.batch)[::-1]
    while done == 0 or time.perf_counter() - started < warmup_s:
        texts_a, texts_b = requests.call(calls[done % len(calls)])
        runner(source.encode(texts_a, texts_b, cell.seq_len))
        done += 1
    return done


def calls_per_window(min_calls: int, repeats: int) -> int:
    """The calls each of a cell's `repeats` windows needs so the cell holds at least `min_calls` in all."""
    return math.ceil(min_calls / repeats)


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
            "passes": sum(w.passes for w in self.windows),
            "elapsed_s": float(sum(w.elapsed_s for w in self.windows)),
            "qps_repeats": [float(v) for v in qps],
            "requests_repeats": [w.requests for w in self.windows],
            "passes_repeats": [w.passes for w in self.windows],
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


def time_cell(source: ModelSource, runner: Runner, requests: RequestSequence, cell: Cell, warmup_s: float,
              duration_s: float, repeats: int, min_calls: int = 1) -> CellTiming:
    """One cell on its own: warm-up, then `repeats` windows (the stage interleaves cells instead)."""
    windows = []
    with pinned_threads(cell.threads):
        for _ in range(repeats):
            warm_up(source, runner, requests, cell, warmup_s)
            windows.append(time_window(source, runner, requests, cell, duration_s,
                                       calls_per_window(min_calls, repeats)))
    return CellTiming(cell, tuple(windows))


def example_inputs(source: ModelSource, requests: RequestSequence, cell: Cell,
                   shapes: set[ShapeKey]) -> dict[ShapeKey, dict]:
    """One real tokenized batch for each input shape the cell's calls had (for counting their FLOPs): every
    window serves whole passes, so one pass holds every shape."""
    found: dict[ShapeKey, dict] = {}
    for where in requests.calls(cell.batch):
        inputs = source.encode(*requests.call(where), cell.seq_len)
        key = shape_key(inputs)
        if key in shapes and key not in found:
            found[key] = inputs
            if len(found) == len(shapes):
                break
    return found


def request_sequence(config: Config, paths: RunPaths, batch_sizes: list[int] | None = None) -> RequestSequence:
    """The requests every cell serves: the first `bench.rows` test rows, shuffled with `bench.seed` and cut to a
    multiple of every batch size (default `bench.batch_sizes`), so each splits a pass into whole calls."""
    path = require(paths.split("test"), "data")
    test = pd.read_parquet(path)
    columns = text_columns(config.task)
    missing = [c for c in columns if c not in test.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; re-run the 'data' stage")
    test = test.head(config.bench.rows)
    return RequestSequence.seeded(tuple(test["text_a"]), tuple(test["text_b"]) if "text_b" in columns else None,
                                  batch_sizes or config.bench.batch_sizes, config.bench.seed)
