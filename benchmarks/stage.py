"""Stage `bench`: every model × backend × batch size × sequence length × thread count, timed in one process.

Teacher and students serve the same requests (one seeded sequence of test rows, in whole passes: see
`harness`), raw text in and labels out, interleaved repeat by repeat (each round visits every cell once,
in a rotated order), so machine drift hits every model alike and their ratios hold on a noisy machine.
Each row gives its speed-up over the teacher as a user would deploy it (torch fp32) and over the teacher's
fastest backend on the same device at the same cell (what quantizing the teacher alone would give).
Every row records the hardware, threads, library versions and the config hash; each device's GEMM peak
(CPU fp32, CUDA fp16) is measured once per round, between the cells, and the best kept with its spread,
so each row also says what fraction of it the model-only forward reaches (FLOPs of the fp32 graph: for
int8 backends an effective rate that may pass 100 %; for a forward in the peak's own precision a share
over 100 % is flagged as a measurement error). Peak RSS comes from one short child process per model × backend (see `footprint`).
Writes `bench/results.parquet` and `bench/results.json`, and with a `budget` section `bench/verdicts.csv`
and the pick to ship. With `bench.candidates` (pair tasks) it also times the query-against-cached-candidates shape
(`candidates`) into `bench/candidates.parquet`.

Which pairs run: with `bench.backends` set, a listed backend that cannot run here (not implemented, a
missing package, no CUDA) is an error; with the default (`compress.backends`) it is skipped and the
reason recorded, as the compress stage skips it too. A backend that does not apply to a model family
(onnx-optimized on a BOW student) is skipped either way. A missing model or a missing built artifact
of a runnable backend is always an error naming the path and the stage to run.
"""

from __future__ import annotations

import contextlib
import json
import math
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from tinykd.artifacts import (
    RunPaths,
    atomic_path,
    fingerprint,
    read_json,
    recorded_fingerprint,
    require,
    write_json,
    write_parquet,
)
from tinykd.benchmarks.budget import ShipDecision, Verdict, judge_results, ship
from tinykd.benchmarks.candidates import time_candidates
from tinykd.benchmarks.footprint import Footprint, FootprintSpec, measure_footprint
from tinykd.benchmarks.gemm_peak import ForwardFlops, GemmPeak, best_of, gemm_peak
from tinykd.benchmarks.harness import (
    Cell,
    CellTiming,
    RequestSequence,
    calls_per_window,
    example_inputs,
    pinned_threads,
    request_sequence,
    time_window,
    warm_up,
)
from tinykd.benchmarks.tfidf_floor import BACKEND as FLOOR_BACKEND
from tinykd.benchmarks.tfidf_floor import NAME as FLOOR_NAME
from tinykd.benchmarks.tfidf_floor import TfidfFloor
from tinykd.compress.backend import BACKENDS, backend, cannot_run, load_runner
from tinykd.compress.build_size import build_size_mb
from tinykd.compress.model_source import ModelSource
from tinykd.config import Config
from tinykd.environment import environment
from tinykd.errors import ArtifactError, ConfigError, DataError
from tinykd.task_rows import text_columns

VERSIONED = ("torch", "transformers", "tokenizers", "onnxruntime", "numpy")


@dataclass(frozen=True)
class Pair:
    model: str
    backend: str


@dataclass(frozen=True)
class Skipped:
    model: str
    backend: str
    reason: str


@dataclass
class BenchResult:
    rows: pd.DataFrame
    skipped: list[Skipped] = field(default_factory=list)
    gemm: list[GemmPeak] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    decision: ShipDecision | None = None  # None without a budget section

    def summary(self) -> str:
        pairs = self.rows[["model", "backend"]].drop_duplicates()
        head = f"bench: {len(self.rows)} cells, {len(pairs)} model × backend pairs"
        head += f" ({len(self.skipped)} skipped)" if self.skipped else ""
        neural = self.rows[self.rows["model"] != FLOOR_NAME]
        # fp32 graphs only: an int8 backend's rate is "effective" (fp32 FLOPs over int8 time) and can pass 100 %.
        fp32 = neural["backend"].map(lambda name: BACKENDS[name].precision == "fp32").astype(bool)
        students = neural[neural["best_batch"] & (neural["model"] != "teacher") & fp32
                          & ~neural["peak_measurement_error"].astype(bool)]
        if len(students):
            low, high = students["fraction_of_peak"].min(), students["fraction_of_peak"].max()
            span = f"{low:.1%}" if f"{low:.1%}" == f"{high:.1%}" else f"{low:.1%}–{high:.1%}"
            head += f"; fp32 student forwards at {span} of the fp32 GEMM peak (best batch)"
        if self.decision is not None:
            return f"{head}; {self.decision.line()}"
        best = neural.loc[neural["qps"].idxmax()]
        return f"{head}; fastest {best['model']}/{best['backend']} {best['qps']:.0f} qps at batch {best['batch']}"


# ---- what runs ---------------------------------------------------------------------------------------------

def plan(config: Config, paths: RunPaths) -> tuple[list[Pair], list[Skipped]]:
    """The (model, backend) pairs to time and the ones skipped with their reason; errors before any timing."""
    pair_task = config.task.kind == "pair"
    models = config.bench.models if config.bench.models is not None else config.compressed_models
    explicit = config.bench.backends is not None
    backends = list(config.bench.backends if explicit else config.compress.backends)
    key = "bench.backends" if explicit else "compress.backends"
    pairs, skipped, reasons = [], [], {}
    for name in backends:
        info = backend(name)  # unknown name: ArtifactError listing the known ones
        reasons[name] = cannot_run(info)
        if reasons[name] and explicit:
            raise ArtifactError(f"{key}: backend {name} cannot run here: {reasons[name]} "
                                f"(remove it from {key}, or run bench where it can run)")
    for model in models:
        source = ModelSource.of(model, paths, pair_task)  # missing model: names the dir and 'teacher'/'distill'
        for name in backends:
            info = BACKENDS[name]
            if source.family not in info.families:
                skipped.append(Skipped(model, name, f"does not apply to {source.family!r} models"))
            elif reasons[name]:
                skipped.append(Skipped(model, name, reasons[name]))
            else:
                require(paths.compressed(model, name), "compress")
                pairs.append(Pair(model, name))
    if not pairs:
        raise ArtifactError(f"nothing to benchmark: every model × backend was skipped ({skipped})")
    return pairs, skipped


def _seq_lengths(config: Config) -> list[int]:
    return list(config.bench.seq_lengths or [config.task.max_length])


def budget_seq_len(config: Config, pairs: list[Pair]) -> int | None:
    """The sequence length a budget is judged at (task.max_length when swept, else the longest swept); a budget
    on a device no benchmarked backend runs on is a config error. (Its batch and threads are in the sweep: the
    config refuses anything else when it loads.)"""
    budget = config.budget
    if budget is None:
        return None
    devices = sorted({BACKENDS[p.backend].device for p in pairs})
    if budget.device not in devices:
        raise ConfigError(f"budget.device {budget.device!r}: no benchmarked backend runs there (devices: {devices})")
    lengths = _seq_lengths(config)
    return config.task.max_length if config.task.max_length in lengths else max(lengths)


# ---- facts about each pair -----------------------------------------------------------------------------------

def recorded_accuracy(path: Path) -> float:
    """Test accuracy the compress stage wrote (`test.accuracy` nested or dotted, or `accuracy`); NaN if absent."""
    return recorded_test_figure(path, "accuracy")


def recorded_test_figure(path: Path, key: str) -> float:
    """A test-split figure (`accuracy`, `macro_f1`) the compress stage wrote: `test.<key>` nested or dotted, or
    `<key>`; NaN if absent."""
    if not path.is_file():
        return math.nan
    try:
        metrics = read_json(path)
    except ValueError as error:
        raise ArtifactError(f"{path}: not valid JSON ({error}); re-run the 'compress' stage") from error
    if not isinstance(metrics, dict):
        return math.nan
    test = metrics.get("test")
    for value in ((test or {}).get(key) if isinstance(test, dict) else None,
                  metrics.get(f"test.{key}"), metrics.get(key)):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return math.nan


def _footprint_spec(source: ModelSource, pair: Pair, paths: RunPaths, rows: RequestSequence,
                    config: Config) -> FootprintSpec:
    """The heaviest cell of the sweep: largest batch of the longest rows, longest sequence, most threads."""
    batch = max(config.bench.batch_sizes)

    def chars(i: int) -> int:
        return len(rows.texts_a[i]) + (len(rows.texts_b[i]) if rows.texts_b is not None else 0)

    order = sorted(range(len(rows)), key=chars, reverse=True)
    index = [order[i % len(order)] for i in range(batch)]
    return FootprintSpec(
        name=source.name, directory=str(source.directory), family=source.family, pair=source.pair,
        backend=pair.backend, artifact=str(paths.compressed(pair.model, pair.backend)),
        threads=max(config.bench.threads), batch=batch, seq_len=max(_seq_lengths(config)),
        texts_a=[rows.texts_a[i] for i in index],
        texts_b=None if rows.texts_b is None else [rows.texts_b[i] for i in index],
    )


@contextlib.contextmanager
def _quiet_loading():
    """No per-file 'Loading weights' bars from transformers while the stage loads models (its own bar is enough)."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


# ---- timing -----------------------------------------------------------------------------------------------------

def time_cells(config: Config, paths: RunPaths, sources: dict[str, ModelSource], pairs: list[Pair],
               requests: RequestSequence) -> tuple[list[CellTiming], dict[tuple[str, int], GemmPeak]]:
    """Every cell, thread count by thread count (a runner's threads are fixed when it loads), repeat-major;
    and the GEMM peak of each device at each thread count, measured at the start of every round.

    Each window gets its own warm-up of `bench.warmup_s`: the cell before it ran another model, whose
    weights and buffers now fill the caches.
    """
    bench = config.bench
    lengths = _seq_lengths(config)
    devices = sorted({BACKENDS[p.backend].device for p in pairs})
    per_window = calls_per_window(bench.min_calls, bench.repeats)
    cells_per_threads = len(pairs) * len(bench.batch_sizes) * len(lengths)
    timings, samples = [], {}
    with tqdm(total=cells_per_threads * len(bench.threads) * bench.repeats, desc="bench", unit="window") as bar:
        for threads in bench.threads:
            with _quiet_loading():
                runners = {p: load_runner(p.backend, sources[p.model], paths.compressed(p.model, p.backend), threads)
                           for p in pairs}
            cells = [Cell(p.model, p.backend, batch, seq_len, threads)
                     for p in pairs for batch in bench.batch_sizes for seq_len in lengths]
            windows = {cell: [] for cell in cells}
            for repeat in range(bench.repeats):
                for device in devices:  # the CUDA peak is fp16 and takes the first thread count's host threads
                    samples.setdefault((device, threads), []).append(gemm_peak(threads, device=device))
                shift = repeat % len(cells)
                for cell in cells[shift:] + cells[:shift]:
                    pair, source = Pair(cell.model, cell.backend), sources[cell.model]
                    bar.set_postfix_str(f"{cell.model}/{cell.backend} b{cell.batch} L{cell.seq_len} t{threads}",
                                        refresh=False)
                    with pinned_threads(threads):
                        warm_up(source, runners[pair], requests, cell, bench.warmup_s)
                        windows[cell].append(time_window(source, runners[pair], requests, cell, bench.duration_s,
                                                         per_window))
                    bar.update()
            timings += [CellTiming(cell, tuple(w)) for cell, w in windows.items()]
            del runners
    return timings, {key: best_of(measured) for key, measured in samples.items()}


@dataclass(frozen=True)
class ForwardFigures:
    params: int
    model_flops: float  # mean FLOPs of one call's forward, over the calls timed
    achieved_gflops: float  # all timed forwards' FLOPs / their model-only seconds


def forward_figures(sources: dict[str, ModelSource], timings: list[CellTiming],
                    requests: RequestSequence) -> dict[Cell, ForwardFigures]:
    """FLOPs of exactly the forwards each cell timed (by input shape), on the fp32 torch model, one model at a time."""
    figures = {}
    for model in sorted({t.cell.model for t in timings}):
        with _quiet_loading():
            torch_model = sources[model].load_torch()
        params, flops_of = sum(p.numel() for p in torch_model.parameters()), ForwardFlops(torch_model)
        for timing in (t for t in timings if t.cell.model == model):
            shapes = timing.shapes
            examples = example_inputs(sources[model], requests, timing.cell, set(shapes))
            total = sum(count * flops_of(examples[key]) for key, count in shapes.items())
            calls = sum(shapes.values())
            figures[timing.cell] = ForwardFigures(params, total / calls, total / timing.model_seconds / 1e9)
        del torch_model, flops_of
    return figures


def fit_floor(config: Config, paths: RunPaths) -> TfidfFloor:
    """The TF-IDF + logistic regression floor, fitted on the gold train rows."""
    return TfidfFloor.fit(pd.read_parquet(require(paths.split("train"), "data")), config.task.kind == "pair",
                          num_labels=len(config.task.labels))


def floor_rows(config: Config, paths: RunPaths, floor: TfidfFloor, requests: RequestSequence, env: dict,
               started: str) -> pd.DataFrame:
    """The floor judged on test and timed like the rest (after the neural cells; it is a reference, not a
    contender whose ratio to the teacher is claimed)."""
    judged = floor.metrics(pd.read_parquet(paths.split("test")), config.task.display_names)
    records, bench = [], config.bench
    for threads in bench.threads:
        for batch in bench.batch_sizes:
            cell = Cell(FLOOR_NAME, FLOOR_BACKEND, batch, max(_seq_lengths(config)), threads)
            with pinned_threads(threads):
                windows = []
                for _ in range(bench.repeats):
                    warm_up(floor, floor, requests, cell, bench.warmup_s)
                    windows.append(time_window(floor, floor, requests, cell, bench.duration_s,
                                               calls_per_window(bench.min_calls, bench.repeats)))
            records.append({
                **asdict(cell), "device": "cpu", "repeats": bench.repeats, **CellTiming(cell, tuple(windows)).figures(),
                "size_mb": floor.size_mb, "params": int(floor.classifier.coef_.size + floor.classifier.intercept_.size),
                "accuracy": judged["accuracy"], "macro_f1": judged["macro_f1"], "requests_digest": requests.digest(),
                **_environment_columns(env),
                "config_hash": fingerprint(config), "timestamp": started,
            })
    frame = pd.DataFrame(records)
    frame["best_batch"] = frame["model_qps"] == frame.groupby(["threads"])["model_qps"].transform("max")
    return frame


# ---- the stage --------------------------------------------------------------------------------------------------

def _environment_columns(env: dict) -> dict:
    versions = env.get("versions", {})
    return {"cpu": env["cpu"], "cores": env["cores"], "gpu": env["gpu"], "gpus": env["gpus"], "python": env["python"],
            **{f"{package}_version": versions.get(package) for package in VERSIONED}}


def result_rows(config: Config, paths: RunPaths, timings: list[CellTiming], figures: dict[Cell, ForwardFigures],
                footprints: dict[Pair, Footprint], peaks: dict[tuple[str, int], GemmPeak], sources: dict[str, ModelSource],
                requests: RequestSequence, env: dict, started: str) -> pd.DataFrame:
    config_hash = fingerprint(config)
    records = []
    for timing in timings:
        cell, pair = timing.cell, Pair(timing.cell.model, timing.cell.backend)
        artifact = paths.compressed(cell.model, cell.backend)
        forward, peak = figures[cell], peaks[(BACKENDS[cell.backend].device, cell.threads)]
        records.append({
            **asdict(cell), "device": BACKENDS[cell.backend].device, "repeats": len(timing.windows),
            **timing.figures(),
            **asdict(footprints[pair]),
            "size_mb": build_size_mb(artifact, sources[cell.model].directory),
            "params": forward.params,
            "accuracy": recorded_accuracy(artifact / "metrics.json"),
            "macro_f1": recorded_test_figure(artifact / "metrics.json", "macro_f1"),
            "requests_digest": requests.digest(),
            "model_flops": forward.model_flops,
            "achieved_gflops": forward.achieved_gflops,
            "gemm_gflops": peak.gflops,
            "gemm_spread_pct": peak.spread_pct,
            "fraction_of_peak": forward.achieved_gflops / peak.gflops,
            # A forward in the peak's own precision cannot beat the peak: above 100 % the peak was measured low.
            "peak_measurement_error": bool(BACKENDS[cell.backend].precision == peak.precision
                                           and forward.achieved_gflops > peak.gflops),
            **_environment_columns(env),
            "config_hash": config_hash,
            "timestamp": started,
        })
    frame = pd.DataFrame(records)
    # The best batch size of each model × backend × length × threads: the one whose forward runs fastest.
    group = ["model", "backend", "seq_len", "threads"]
    frame["best_batch"] = frame["model_qps"] == frame.groupby(group)["model_qps"].transform("max")
    return frame


def with_speedups(frame: pd.DataFrame) -> pd.DataFrame:
    """Each row's QPS over the teacher's at the same batch, length and threads: over its torch fp32 (as a user
    would deploy it) and over its fastest backend on the same device (what quantizing the teacher alone gives).
    NaN where the teacher was not measured at that cell."""
    cell = ["batch", "seq_len", "threads"]
    teacher = frame[frame["model"] == "teacher"]
    fp32 = teacher[teacher["backend"] == "torch-fp32"].set_index(cell)["qps"].rename("_fp32")
    fastest = teacher.loc[teacher.groupby([*cell, "device"])["qps"].idxmax()].set_index([*cell, "device"])
    fastest = fastest[["qps", "backend"]].rename(columns={"qps": "_best", "backend": "teacher_best_backend"})
    out = frame.join(fp32, on=cell).join(fastest, on=[*cell, "device"])
    out["speedup_vs_teacher_fp32"] = out["qps"] / out["_fp32"]
    out["speedup_vs_teacher_best"] = out["qps"] / out["_best"]
    return out.drop(columns=["_fp32", "_best"])


def write_results(paths: RunPaths, frame: pd.DataFrame, env: dict, peaks: dict[tuple[str, int], GemmPeak],
                  skipped: list[Skipped], verdicts: list[Verdict], decision: ShipDecision | None, stamp: str) -> None:
    write_parquet(paths.bench_dir / "results.parquet", frame)
    records = json.loads(frame.to_json(orient="records"))  # NaN -> null, numpy scalars -> JSON numbers
    write_json(paths.bench_dir / "results.json", {
        "fingerprint": stamp,
        "config_hash": frame["config_hash"].iat[0], "timestamp": frame["timestamp"].iat[0], "environment": env,
        "gemm": [asdict(p) for p in dict.fromkeys(peaks.values())], "skipped": [asdict(s) for s in skipped], "rows": records,
        "verdicts": [_json_safe(v.record()) for v in verdicts],
        "ship": None if decision is None else {"line": decision.line(),
                                               "pick": _json_safe(decision.pick.record()) if decision.pick else None,
                                               "closest_miss": _json_safe(decision.closest_miss.record())
                                               if decision.closest_miss else None},
    })
    verdicts_csv = paths.bench_dir / "verdicts.csv"
    if decision is not None:
        with atomic_path(verdicts_csv) as tmp:
            pd.DataFrame([v.record() for v in verdicts]).to_csv(tmp, index=False)
    else:
        verdicts_csv.unlink(missing_ok=True)  # a verdict of an earlier run with a budget would look current


def _json_safe(record: dict) -> dict:
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in record.items()}


@dataclass
class UpToDate:
    ship_line: str | None

    def summary(self) -> str:
        return "bench: up to date" + (f"; {self.ship_line}" if self.ship_line else "")


def _stamp(config: Config, paths: RunPaths, pairs: list[Pair], env: dict) -> str:
    """What the figures depend on: the sweep, the budget, each built artifact, this machine and its libraries."""
    built = {f"{p.model}/{p.backend}": recorded_fingerprint(paths.compressed(p.model, p.backend) / "metrics.json")
             for p in pairs}
    machine = {k: env.get(k) for k in ("cpu", "cores", "gpu", "gpus", "python", "versions")}
    return fingerprint(config.task, config.bench, config.budget, config.compress, built, machine)


def run(config: Config, paths: RunPaths, footprint: bool | None = None) -> BenchResult | UpToDate:
    """Time every cell and write the results; `footprint=False` (default: `bench.footprint`) skips the per-pair
    memory processes (NaN RSS).

    Skipped when results.json records the same sweep, budget, built artifacts, machine and library versions
    (delete `bench/` or change the config to measure again)."""
    pairs, skipped = plan(config, paths)
    stamp = _stamp(config, paths, pairs, environment())
    results = paths.bench_dir / "results.json"
    if recorded_fingerprint(results) == stamp and (paths.bench_dir / "results.parquet").is_file():
        return UpToDate((read_json(results).get("ship") or {}).get("line"))
    seq_len = budget_seq_len(config, pairs)
    requests = request_sequence(config, paths)
    sources = {m: ModelSource.of(m, paths, config.task.kind == "pair") for m in dict.fromkeys(p.model for p in pairs)}
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    env = environment()

    none = Footprint(math.nan, math.nan, math.nan)
    footprint = config.bench.footprint if footprint is None else footprint
    footprints = {p: measure_footprint(_footprint_spec(sources[p.model], p, paths, requests, config))
                  if footprint else none for p in pairs}
    timings, peaks = time_cells(config, paths, sources, pairs, requests)  # peaks: (device, threads) -> GemmPeak
    figures = forward_figures(sources, timings, requests)

    frame = result_rows(config, paths, timings, figures, footprints, peaks, sources, requests, env, started)
    floor = fit_floor(config, paths) if config.bench.floor else None
    if floor is not None:
        frame = pd.concat([frame, floor_rows(config, paths, floor, requests, env, started)], ignore_index=True)
    frame = with_speedups(frame)
    candidates = paths.bench_dir / "candidates.parquet"
    if config.bench.candidates:
        write_parquet(candidates, time_candidates(config, paths, sources, pairs, requests, seq_len or
                                                  config.task.max_length, floor))
    else:
        candidates.unlink(missing_ok=True)  # figures of an earlier sweep would look current
    verdicts = judge_results(frame.to_dict("records"), config.budget, seq_len) if config.budget else []
    decision = ship(verdicts) if config.budget else None
    write_results(paths, frame, env, peaks, skipped, verdicts, decision, stamp)
    return BenchResult(frame, skipped, list(dict.fromkeys(peaks.values())), verdicts, decision)
