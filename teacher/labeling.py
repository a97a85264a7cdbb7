"""Stage `label`: the fine-tuned teacher's raw logits for every row of the chosen splits.

Writes `label/<split>.parquet`: the split's rows plus `logits` (a float32 list per row; logits, not
probabilities, so students can apply any temperature). Work is done in chunks of `label.chunk_rows`
that are each written atomically, so a killed run resumes at the missing chunks. This module decides which
chunks are missing, writes and joins them; an engine (`label.engine`: `ENGINES`) only computes their logits.
"""

from __future__ import annotations

import shutil
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from tinykd.artifacts import (
    RunPaths,
    atomic_path,
    fingerprint,
    read_json,
    recorded_fingerprint,
    require,
    write_json,
)
from tinykd.config import Config
from tinykd.config.augment import is_pool_op
from tinykd.environment import environment
from tinykd.teacher.label_engine import Chunk, LabelEngine, LocalEngine
from tinykd.teacher.ray_labeling import RayEngine

ENGINES: dict[str, Callable[[Config, RunPaths], LabelEngine]] = {"local": LocalEngine, "ray": RayEngine}
PROJECTION_ROWS = 10_000_000
PROJECTION_CORES = (2, 16, 64)


@dataclass
class LabelResult:
    rows: dict[str, int]
    rows_per_second: float
    resumed_chunks: int = 0
    skipped: bool = False
    engine: str = "local"
    runtime: str = "torch"
    cores: int = 0
    rows_per_second_per_core: float = 0.0
    projection: dict | None = None

    def summary(self) -> str:
        if self.skipped:
            return "label: up to date"
        counts = " ".join(f"{k}={v}" for k, v in self.rows.items())
        speed = f" at {self.rows_per_second:.1f} rows/s"
        if self.projection:
            hours = ", ".join(f"{_hours(h)} h on {n}" for n, h in self.projection["hours_on_cores"].items())
            speed += (f" ({self.engine} engine on {self.runtime}, {self.cores} core{'s' * (self.cores != 1)}, "
                      f"{self.rows_per_second_per_core:.1f} rows/s per core; "
                      f"{self.projection['rows'] / 1e6:g}M rows: {hours} cores)")
        resumed = f", {self.resumed_chunks} chunks reused from an earlier run" if self.resumed_chunks else ""
        return f"label: {counts}{speed}{resumed}"


def run(config: Config, paths: RunPaths) -> LabelResult:
    spec = config.label
    spec.require_engine_package(config.where("label.engine"))
    teacher_stamp = recorded_fingerprint(require(paths.teacher_metrics, "teacher"))
    summary_path = paths.label_dir / "summary.json"
    done = read_json(summary_path).get("splits", {}) if summary_path.exists() else {}
    # Each split has its own fingerprint, so adding a split (e.g. augmented rows) labels only that one.
    sources = {split: _source(paths, split) for split in config.label_splits}
    # A row cap joins the fingerprint only where it is set, so uncapped splits keep their earlier fingerprints.
    # The engine does not: both write the same chunks, so a run may resume on the other engine.
    stamps = {split: fingerprint(config.task.max_length, spec.chunk_rows, teacher_stamp, source_stamp,
                                 *filter(None, [_row_cap(spec, split)]))
              for split, (_, source_stamp) in sources.items()}
    todo = [s for s in stamps if done.get(s, {}).get("fingerprint") != stamps[s] or not paths.labels(s).exists()]
    if not todo:
        return LabelResult(rows={}, rows_per_second=0.0, skipped=True, engine=spec.engine)

    engine = ENGINES[spec.engine](config, paths)
    splits = _SplitsInProgress(paths, summary_path, done, spec.threads)
    with tqdm(total=0, desc="label", unit="row", smoothing=0.1) as bar:
        chunks = _missing_chunks(config, paths, {s: sources[s][0] for s in todo}, stamps, splits, bar)
        with closing(engine.label(chunks, bar)) as labelled:  # closed on any error: the engine stops what it started
            for chunk, logits in labelled:  # logits (n, K)
                with atomic_path(chunk.part) as tmp:
                    pq.write_table(_with_logits(chunk.rows, logits), tmp)
                splits.chunk_written(chunk)

    work = engine.work
    computed = splits.computed
    rate = computed / work.seconds if work.seconds else 0.0
    per_core = computed / work.core_seconds if work.core_seconds else 0.0
    projection = _projection(per_core)
    write_json(summary_path, {"splits": done, "rows_per_second": round(rate, 1), "batch_size": spec.batch_size,
                              "engine": spec.engine, "workers": work.workers, "threads": work.threads,
                              "cores": work.cores, "rows_per_second_per_core": round(per_core, 2),
                              "projection": projection, "runtime": work.runtime,
                              "environment": environment(work.threads)})
    return LabelResult(rows=splits.counts, rows_per_second=rate, resumed_chunks=splits.reused, engine=spec.engine,
                       runtime=work.runtime.get("runtime", "torch"),
                       cores=work.cores, rows_per_second_per_core=per_core, projection=projection)


@dataclass
class _SplitsInProgress:
    """Which chunks of each split are still out; a split whose last chunk is written is joined into its table."""

    paths: RunPaths
    summary_path: Path
    done: dict
    threads: int | None
    pending: dict[str, set[int]] = field(default_factory=dict)
    chunk_counts: dict[str, int] = field(default_factory=dict)
    stamps: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    reused: int = 0
    computed: int = 0

    def planned(self, split: str, stamp: str, chunks: int, missing: list[Chunk]) -> None:
        self.stamps[split], self.chunk_counts[split] = stamp, chunks
        self.pending[split] = {chunk.number for chunk in missing}
        self.reused += chunks - len(missing)
        if not missing:
            self._join(split)

    def chunk_written(self, chunk: Chunk) -> None:
        self.computed += len(chunk.rows)
        self.pending[chunk.split].discard(chunk.number)
        if not self.pending[chunk.split]:
            self._join(chunk.split)

    def _join(self, split: str) -> None:
        parts = self.paths.label_parts(split)
        numbers = range(self.chunk_counts[split])
        table = pa.concat_tables(pq.read_table(parts / f"part-{n:05d}.parquet") for n in numbers)
        with atomic_path(self.paths.labels(split)) as tmp:
            pq.write_table(table, tmp)
        shutil.rmtree(parts)
        self.counts[split] = table.num_rows
        self.done[split] = {"fingerprint": self.stamps[split], "rows": table.num_rows}
        write_json(self.summary_path, {"splits": self.done, "environment": environment(self.threads)})


def _missing_chunks(config: Config, paths: RunPaths, sources: dict[str, Path], stamps: dict[str, str],
                    splits: _SplitsInProgress, bar: tqdm) -> Iterator[Chunk]:
    """The chunks without a part file, split by split, read lazily (the local engine holds one split at a time).

    A split's missing chunks are all registered before the first is handed out, so it is joined only after its last.
    """
    spec = config.label
    for split, source in sources.items():
        rows = pd.read_parquet(source)
        cap = _row_cap(spec, split)
        if cap:  # the cap samples the augmentation ops' rows; the pool's rows have their own (augment.unlabeled)
            pool = rows["op"].map(is_pool_op).astype(bool) if "op" in rows else pd.Series(False, index=rows.index)
            made = rows[~pool]
            if len(made) > cap:
                rows = pd.concat([made.sample(n=cap, random_state=0), rows[pool]]).sort_index()  # keeps source order
        parts = paths.label_parts(split)
        _reset_if_stale(parts, stamps[split])
        starts = range(0, len(rows), spec.chunk_rows)
        chunks = [Chunk(split, number, rows.iloc[start : start + spec.chunk_rows], parts / f"part-{number:05d}.parquet")
                  for number, start in enumerate(starts)]
        missing = [chunk for chunk in chunks if not chunk.part.exists()]
        bar.total += len(rows)
        bar.update(len(rows) - sum(len(chunk.rows) for chunk in missing))
        splits.planned(split, stamps[split], len(chunks), missing)
        yield from missing


def _projection(rows_per_second_per_core: float) -> dict | None:
    """Hours to label PROJECTION_ROWS rows on each of PROJECTION_CORES cores at the measured per-core rate: linear
    scaling, which a pool of single-threaded actors comes close to (the rows are independent)."""
    if not rows_per_second_per_core:
        return None
    hours = {str(n): float(f"{PROJECTION_ROWS / (rows_per_second_per_core * n) / 3600:.3g}") for n in PROJECTION_CORES}
    return {"rows": PROJECTION_ROWS, "hours_on_cores": hours}


def _hours(hours: float) -> str:
    return f"{hours:.0f}" if hours >= 10 else f"{hours:.1f}" if hours >= 1 else f"{hours:.2f}"


def _source(paths: RunPaths, split: str) -> tuple[Path, str | None]:
    """The table to label for `split`, and the fingerprint of the stage that wrote it."""
    if split == "augmented":
        return require(paths.augmented, "augment"), recorded_fingerprint(require(paths.augment_summary, "augment"))
    return require(paths.split(split), "data"), recorded_fingerprint(require(paths.data_summary, "data"))


def _row_cap(spec, split: str) -> int | None:
    """At most this many rows of `split` are labelled (a seeded sample); None = all."""
    return spec.max_augmented_rows if split == "augmented" else None


def _with_logits(rows: pd.DataFrame, logits: np.ndarray) -> pa.Table:
    """The rows as an Arrow table plus a `logits` list<float32> column."""
    table = pa.Table.from_pandas(rows.reset_index(drop=True), preserve_index=False)
    flat = pa.array(logits.reshape(-1), type=pa.float32())
    column = pa.FixedSizeListArray.from_arrays(flat, logits.shape[1]).cast(pa.list_(pa.float32()))
    return table.append_column("logits", column)


def _reset_if_stale(parts, stamp: str) -> None:
    """Chunks from a run with another teacher, data or chunk size must not be reused."""
    marker = parts / "fingerprint"
    if parts.exists() and (not marker.exists() or marker.read_text().strip() != stamp):
        shutil.rmtree(parts)
    parts.mkdir(parents=True, exist_ok=True)
    marker.write_text(stamp)
