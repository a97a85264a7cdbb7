"""Stage `load`: the MLPerf LoadGen Server scenario against each target, in-process and over HTTP, and the highest
offered QPS whose run is VALID at each p99 bound.

For each target (model × backend) and system (see `load_systems`), the system is started once (the HTTP one
deploys the `serve` application on a local Ray, or on `serve.ray_address`), warmed up, then loaded at one offered
QPS after another, each run at least `load.min_duration_s` long. With `load.offered_qps` unset the loads are a
search per bound: from `load.start_qps` (or the tighter bound's answer) doubling until a run is INVALID (halving
until one is VALID when the first is not), then `load.search_steps` bisections between the highest VALID and the
lowest INVALID load. Every finished run is added to `load/points.parquet` at once, so a killed stage resumes from
the runs it finished (with the same settings, models and machine), and the results at a bound are every run finished
there with those settings, this search's and earlier ones'.

With `load.ceiling` a server with no model (`NoModel`: an answer at once) is loaded the same way: what the serving
path itself sustains on this machine, the ceiling every model's figure sits under.

Writes `load/results.parquet` (one row per run, with the environment), `load/summary.csv` (highest VALID QPS per
target, system and bound) and, with a budget, `load/verdicts.csv`: the sustainable QPS at the budget's p99 per
replica, the replicas and cores the budget's QPS needs, and whether they fit on `budget.machines` machines. When the
bench has run, the report is written again with its "Under load" section.
"""

from __future__ import annotations

import contextlib
import math
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import pandas as pd
from tqdm.auto import tqdm

from tinykd.artifacts import (
    RunPaths,
    atomic_path,
    fingerprint,
    recorded_fingerprint,
    require,
    write_json,
    write_parquet,
)
from tinykd.config import Config, LoadConfig, LoadTarget
from tinykd.environment import environment
from tinykd.errors import ConfigError, DataError
from tinykd.serving.deployment import running_app
from tinykd.serving.load_systems import HttpSystem, InProcessSystem
from tinykd.serving.loadgen_run import Item, LoadOutcome, LoadPoint, LoadSystem, run_point
from tinykd.serving.predictor import NO_MODEL, load_predictor
from tinykd.serving.stage import require_serving_packages
from tinykd.serving.target import default_target, served_model
from tinykd.task_rows import text_columns

WARMUP_QUERIES = 64
MAX_EXPANSIONS = 12  # doublings (or halvings) before a search gives up finding the other side


def query_items(config: Config, paths: RunPaths) -> list[Item]:
    """The query sample library: the first `load.rows` test rows."""
    path = require(paths.split("test"), "data")
    test = pd.read_parquet(path).head(config.load.rows)
    columns = text_columns(config.task)
    missing = [c for c in columns if c not in test.columns]
    if missing or test.empty:
        raise DataError(f"{path}: {'missing column(s) ' + str(missing) if missing else 'no rows'}; re-run the 'data' stage")
    texts_b = test["text_b"] if "text_b" in columns else [None] * len(test)
    return list(zip(test["text_a"], texts_b))


@dataclass(frozen=True)
class Subject:
    """What one series of runs loads: a target's model × backend, or no model (`load.ceiling`), at its bounds."""

    model: str
    backend: str
    start_qps: float
    bounds: list[float]  # p99 bounds in ms, ascending


def subjects(config: Config, paths: RunPaths) -> list[Subject]:
    """`load.targets` (default: serve's model × backend), each checked to be built before any run; then no-model."""
    spec = config.load
    targets = spec.targets or [LoadTarget(model=m, backend=b) for m, b in [default_target(config, paths)]]
    for target in targets:
        served_model(config, paths, target.model, target.backend)
    found = [Subject(t.model, t.backend, t.start_qps or spec.start_qps, sorted(t.p99_ms) if t.p99_ms else _bounds(config))
             for t in targets]
    return found + ([Subject(NO_MODEL, "none", spec.start_qps, _bounds(config))] if spec.ceiling else [])


@contextmanager
def open_system(kind: str, config: Config, paths: RunPaths, subject: Subject) -> Iterator[LoadSystem]:
    served, spec = served_model(config, paths, subject.model, subject.backend), config.serve
    if kind == "inprocess":
        system = InProcessSystem(load_predictor(served, spec), spec.max_batch_size, spec.batch_wait_timeout_s)
        try:
            yield system
        finally:
            system.close()
        return
    with running_app(served, spec, drain_s=0.0) as app:  # nothing routes to it once the load has ended
        system = HttpSystem(app.url, served.pair)
        try:
            yield system
        finally:
            system.close()


def warm_up(system: LoadSystem, items: list[Item], queries: int = WARMUP_QUERIES) -> None:
    """`queries` untimed queries, all issued at once, and wait for them (first calls pay for allocations)."""
    left, done = [queries], threading.Event()
    lock = threading.Lock()

    def complete(query_ids: list[int], ok: bool) -> None:
        with lock:
            left[0] -= len(query_ids)
            if left[0] <= 0:
                done.set()

    system.set_completion(complete)
    for i in range(queries):
        system.issue(i, items[i % len(items)])
    if not done.wait(timeout=300):
        raise RuntimeError(f"{system.name}: the warm-up queries were not all answered within 300 s")


def search(run: Callable[[float], LoadOutcome], start: float, steps: int, lowest: float = 0.0) -> list[LoadOutcome]:
    """Runs at offered loads from `start`: doubling to the first INVALID run (or halving to the first VALID one, but
    not below `lowest`, where a run cannot send its minimum query count within its maximum duration), then `steps`
    bisections between the highest VALID and the lowest INVALID load."""
    outcomes, qps = [], start
    valid_at, invalid_at = None, None
    for _ in range(MAX_EXPANSIONS):
        if qps < lowest:
            break
        outcome = run(qps)
        outcomes.append(outcome)
        if outcome.valid:
            valid_at = qps
            if invalid_at is not None:
                break
            qps *= 2
        else:
            invalid_at = qps
            if valid_at is not None:
                break
            qps /= 2
    if valid_at is None or invalid_at is None:
        return outcomes
    for _ in range(steps):
        middle = (valid_at + invalid_at) / 2
        outcome = run(middle)
        outcomes.append(outcome)
        if outcome.valid:
            valid_at = middle
        else:
            invalid_at = middle
    return outcomes


def highest_valid(outcomes: list[LoadOutcome]) -> float:
    return max((o.offered_qps for o in outcomes if o.valid), default=math.nan)


@dataclass(frozen=True)
class LoadResult:
    summary_frame: pd.DataFrame
    runs: int

    def summary(self) -> str:
        best = "; ".join(f"{r.model}/{r.backend} {r.system} p99<={r.p99_bound_ms:g} ms: {r.highest_valid_qps:.0f} qps"
                         for r in self.summary_frame.itertuples())
        return f"load: {self.runs} LoadGen runs; highest VALID {best}"


# The `load` keys one run's figures depend on; the others (targets, bounds, where a search starts and how far it goes)
# only choose which runs happen, so changing them keeps the runs already finished.
RUN_KEYS = {"min_duration_s", "min_query_count", "max_duration_s", "rows", "seed"}


def _serving_settings(config: Config, kind: str) -> dict:
    """The `serve` keys a system's figures depend on: the batch policy, threads, their waiting and length in-process;
    all over HTTP."""
    if kind == "http":
        return config.serve.model_dump(mode="json")
    return config.serve.model_dump(mode="json", include={"threads", "spin_wait", "max_batch_size",
                                                         "batch_wait_timeout_s", "seq_len"})


def _bounds(config: Config) -> list[float]:
    if config.load.p99_ms:
        return sorted(config.load.p99_ms)
    if config.budget is None:
        raise ConfigError(f"{config.where('load') or 'load'}: set load.p99_ms or a budget section (its p99_ms is the "
                          "default bound)")
    return [config.budget.p99_ms]


class Points:
    """`load/points.parquet`: every finished run, rewritten (atomically) after each one."""

    def __init__(self, path: Path):
        self.path = path
        self.records = pd.read_parquet(path).to_dict("records") if path.is_file() else []

    def at(self, key: dict, bound: float) -> list[dict]:
        """The finished runs of `key` (target, system, settings) at `bound`, by offered load."""
        found = [r for r in self.records if all(r.get(k) == v for k, v in key.items()) and r["p99_bound_ms"] == bound]
        return sorted(found, key=lambda r: r["offered_qps"])

    def find(self, key: dict, bound: float, qps: float) -> dict | None:
        return next((r for r in self.at(key, bound) if r["offered_qps"] == qps), None)

    def add(self, record: dict) -> None:
        self.records.append(record)
        write_parquet(self.path, pd.DataFrame(self.records))


def outcome_of(record: dict) -> LoadOutcome:
    return LoadOutcome(**{name: record[name] for name in LoadOutcome.__dataclass_fields__})


class TargetRuns:
    """The runs of one target x system: a run finished earlier with the same settings (its `stamp`) is reused; the
    system is opened (and warmed up) only when the first new run needs it, and closed by `stack`."""

    def __init__(self, stack: contextlib.ExitStack, key: dict, points: Points, opener: Callable[[], LoadSystem],
                 items: list[Item], spec: LoadConfig, progress: tqdm):
        self.stack, self.key, self.points, self.opener = stack, key, points, opener
        self.items, self.spec, self.progress = items, spec, progress
        self.system: LoadSystem | None = None

    def at(self, bound: float) -> Callable[[float], LoadOutcome]:
        def run_one(qps: float) -> LoadOutcome:
            earlier = self.points.find(self.key, bound, qps)
            if earlier is not None:
                return outcome_of(earlier)
            if self.system is None:
                self.system = self.stack.enter_context(self.opener())
                warm_up(self.system, self.items)
            self.progress.set_postfix_str(f"p99<={bound:g} ms @ {qps:.1f} qps")
            spec, before = self.spec, self.system.batch_sizes()
            outcome = run_point(self.system, self.items, LoadPoint(qps, bound, spec.min_duration_s,
                                                                   spec.min_query_count, spec.max_duration_s, spec.seed))
            after = self.system.batch_sizes()  # the system counts since it started: this run's batches are the change
            sizes = {size: after[size] - before.get(size, 0) for size in sorted(after) if after[size] > before.get(size, 0)}
            batches = sum(sizes.values())
            mean_batch = sum(size * n for size, n in sizes.items()) / batches if batches else math.nan
            record = self.key | outcome.record() | {"batch_sizes": str(sizes), "mean_batch": mean_batch}
            self.points.add(record)
            self.progress.update(1)
            return outcome
        return run_one

    def series(self, bound: float) -> list[dict]:
        """Every finished run at `bound` with these settings: this search's and any earlier one's (a search started
        elsewhere may not visit a load an earlier one found VALID, yet that run still counts)."""
        return self.points.at(self.key, bound)


def run(config: Config, paths: RunPaths) -> LoadResult:
    if config.load is None:
        raise ConfigError("load: the config has no load section (targets, systems, bounds: docs/config.md)")
    require_serving_packages(config.where("load"))
    spec = config.load
    targets, items = subjects(config, paths), query_items(config, paths)
    env = environment(config.serve.threads)
    points = Points(paths.load_dir / "points.parquet")
    rows: list[dict] = []
    for target in targets:
        built = recorded_fingerprint(paths.compressed(target.model, target.backend) / "metrics.json")
        for kind in spec.systems:
            runs_on = spec.model_dump(mode="json", include=RUN_KEYS)
            stamp = fingerprint(runs_on, _serving_settings(config, kind), built, kind,
                                {k: env[k] for k in ("cpu", "cores", "versions")})
            key = {"model": target.model, "backend": target.backend, "system": kind, "stamp": stamp}
            with contextlib.ExitStack() as stack, tqdm(desc=f"load {target.model}/{target.backend} {kind}",
                                                       unit="run") as progress:
                runs = TargetRuns(stack, key, points, lambda: open_system(kind, config, paths, target), items, spec,
                                  progress)
                start = target.start_qps
                for bound in target.bounds:  # ascending: a tighter bound's answer starts the next search
                    run_at = runs.at(bound)
                    if spec.offered_qps:
                        for qps in spec.offered_qps:
                            run_at(qps)
                    else:
                        search(run_at, start, spec.search_steps, lowest=spec.min_query_count / spec.max_duration_s)
                    series = runs.series(bound)
                    best = highest_valid([outcome_of(r) for r in series])
                    start = start if math.isnan(best) else best
                    rows += series
    return _write(config, paths, rows, env)


def _write(config: Config, paths: RunPaths, rows: list[dict], env: dict) -> LoadResult:
    out = paths.load_dir
    frame = pd.DataFrame(rows).drop(columns=["stamp"])
    spec = config.serve
    frame = frame.assign(replicas=spec.replicas, threads=spec.threads, max_batch_size=spec.max_batch_size,
                         batch_wait_timeout_s=spec.batch_wait_timeout_s, cpu=env["cpu"], cores=env["cores"],
                         versions=str(env["versions"]))
    write_parquet(out / "results.parquet", frame)
    keys = ["model", "backend", "system", "p99_bound_ms"]
    summary = pd.DataFrame([dict(zip(keys, group)) | {"highest_valid_qps": highest_valid([outcome_of(r) for r in runs]),
                                                       "runs": len(runs)}
                            for group, runs in ((g, f.to_dict("records")) for g, f in frame.groupby(keys, sort=False))])
    with atomic_path(out / "summary.csv") as tmp:
        summary.to_csv(tmp, index=False)
    if config.budget is not None:
        verdicts = load_verdicts(summary, config, int(env["cores"]))
        with atomic_path(out / "verdicts.csv") as tmp:
            verdicts.to_csv(tmp, index=False)
    write_json(out / "environment.json", env)
    if (paths.bench_dir / "results.parquet").is_file():  # the report gains its "Under load" section
        from tinykd.benchmarks import report

        report.run(config, paths)
    return LoadResult(summary, len(frame))


def load_verdicts(summary: pd.DataFrame, config: Config, cores: int) -> pd.DataFrame:
    """Per target and system at the budget's p99: QPS per replica, the replicas and cores `budget.qps` needs, and
    whether they fit on `budget.machines` machines like this one (cores // serve.threads replicas each)."""
    budget, spec = config.budget, config.serve
    per_machine = max(1, cores // spec.threads)  # replicas on one machine like the one the runs were measured on
    at_bound = summary[(summary["p99_bound_ms"] == budget.p99_ms) & (summary["model"] != NO_MODEL)]
    rows = []
    for r in at_bound.itertuples():
        per_replica = r.highest_valid_qps / spec.replicas  # NaN when no run was VALID at the bound
        replicas = math.ceil(budget.qps / per_replica) if per_replica > 0 else math.inf
        machines = math.ceil(replicas / per_machine) if math.isfinite(replicas) else math.inf
        rows.append({"model": r.model, "backend": r.backend, "system": r.system, "p99_bound_ms": budget.p99_ms,
                     "sustainable_qps": r.highest_valid_qps, "qps_per_replica": per_replica,
                     "replicas_needed": replicas, "cores_needed": replicas * spec.threads, "machines_needed": machines,
                     "target_qps": budget.qps,
                     "meets": bool(math.isfinite(machines) and (budget.machines is None or machines <= budget.machines))})
    return pd.DataFrame(rows)
