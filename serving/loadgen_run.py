"""One MLPerf LoadGen run of the Server scenario against a load system, and what its log says.

The Server scenario sends one query (one test row) at a time at Poisson-distributed moments averaging the offered
QPS, and measures each query's latency from its *scheduled* send time, so a system that falls behind is charged
for the queueing it causes. A run lasts at least `min_duration_s` and `min_query_count` queries, and is VALID when
its p99 is within the bound (and LoadGen's early-stopping estimate agrees). tinykd also requires every query to
have been answered without an error (a 503 or a lost request makes a run INVALID here, whatever the latency).
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Protocol

Item = tuple[str, str | None]  # one query's (text_a, text_b)


class LoadSystem(Protocol):
    """A system under test: `issue` must return at once and call `complete(query_id, ok)` when the answer is in."""

    name: str

    def issue(self, query_id: int, item: Item) -> None: ...

    def set_completion(self, complete: Callable[[list[int], bool], None]) -> None: ...

    def batch_sizes(self) -> dict[int, int]: ...  # batch size -> batches, since the system started


@dataclass(frozen=True)
class LoadPoint:
    offered_qps: float
    p99_bound_ms: float
    min_duration_s: float
    min_query_count: int
    max_duration_s: float
    seed: int


@dataclass(frozen=True)
class LoadOutcome:
    offered_qps: float
    p99_bound_ms: float
    valid: bool  # LoadGen's VALID and no failed query
    loadgen_valid: bool  # LoadGen's own verdict (latency bound, duration, query count, early stopping)
    scheduled_qps: float
    completed_qps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    queries: int
    failed: int  # queries answered with an error (HTTP 4xx/5xx, an exception)
    duration_s: float  # wall time of the run
    min_duration_met: bool
    min_queries_met: bool
    early_stopping: str

    def record(self) -> dict:
        return asdict(self)


def mllog_results(detail: Path) -> dict:
    """The `result_*`, `early_stopping_*` and `num_errors` entries of an `mlperf_log_detail.txt` (one JSON object per
    `:::MLLOG` line), by key."""
    wanted = {}
    for line in detail.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.startswith(":::MLLOG "):
            continue
        entry = json.loads(line[len(":::MLLOG "):])
        key = entry.get("key", "")
        if key.startswith(("result_", "early_stopping_")) or key == "num_errors":
            wanted[key] = entry.get("value")
    if "result_validity" not in wanted:
        raise RuntimeError(f"{detail}: no result_validity entry (the LoadGen run did not finish)")
    return wanted


def outcome_from_log(results: dict, point: LoadPoint, failed: int, duration_s: float) -> LoadOutcome:
    ms = lambda key: float(results[key]) / 1e6  # noqa: E731  LoadGen logs nanoseconds
    loadgen_valid = results["result_validity"] == "VALID"
    return LoadOutcome(
        offered_qps=point.offered_qps, p99_bound_ms=point.p99_bound_ms, valid=loadgen_valid and failed == 0,
        loadgen_valid=loadgen_valid, scheduled_qps=float(results["result_scheduled_samples_per_sec"]),
        completed_qps=float(results["result_completed_samples_per_sec"]),
        p50_ms=ms("result_50.00_percentile_latency_ns"), p90_ms=ms("result_90.00_percentile_latency_ns"),
        p99_ms=ms("result_99.00_percentile_latency_ns"), max_ms=ms("result_max_latency_ns"),
        queries=int(results["result_query_count"]), failed=failed, duration_s=duration_s,
        min_duration_met=bool(results.get("result_min_duration_met")),
        min_queries_met=bool(results.get("result_min_queries_met")),
        early_stopping=str(results.get("early_stopping_result", "")).strip(),
    )


def run_point(system: LoadSystem, items: list[Item], point: LoadPoint, log_dir: Path | None = None) -> LoadOutcome:
    """One Server-scenario run at `point.offered_qps` over `items` (the query sample library, all kept in memory)."""
    import mlperf_loadgen as lg

    failed = [0]

    def complete(query_ids: list[int], ok: bool) -> None:
        if not ok:
            failed[0] += len(query_ids)
        lg.QuerySamplesComplete([lg.QuerySampleResponse(query_id, 0, 0) for query_id in query_ids])

    system.set_completion(complete)

    def issue_queries(samples) -> None:
        for sample in samples:
            system.issue(sample.id, items[sample.index])

    settings = lg.TestSettings()
    settings.scenario = lg.TestScenario.Server
    settings.mode = lg.TestMode.PerformanceOnly
    settings.server_target_qps = point.offered_qps
    settings.server_target_latency_ns = int(point.p99_bound_ms * 1e6)
    settings.server_target_latency_percentile = 0.99
    settings.min_duration_ms = int(point.min_duration_s * 1000)
    settings.max_duration_ms = int(point.max_duration_s * 1000)
    settings.min_query_count = point.min_query_count
    for name in ("qsl_rng_seed", "sample_index_rng_seed", "schedule_rng_seed"):
        setattr(settings, name, point.seed)

    with tempfile.TemporaryDirectory(prefix="loadgen-") as scratch:
        out = Path(log_dir) if log_dir is not None else Path(scratch)
        out.mkdir(parents=True, exist_ok=True)
        log = lg.LogSettings()
        log.log_output.outdir = str(out)
        log.log_output.copy_summary_to_stdout = False
        log.enable_trace = False
        sut = lg.ConstructSUT(issue_queries, lambda: None)  # LoadGen itself waits for every query
        qsl = lg.ConstructQSL(len(items), len(items), lambda indices: None, lambda indices: None)
        started = time.perf_counter()
        try:
            lg.StartTestWithLogSettings(sut, qsl, settings, log)
        finally:
            lg.DestroyQSL(qsl)
            lg.DestroySUT(sut)
        duration = time.perf_counter() - started
        return outcome_from_log(mllog_results(out / "mlperf_log_detail.txt"), point, failed[0], duration)
