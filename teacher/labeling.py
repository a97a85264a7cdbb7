"""Stage `label`: the fine-tuned teacher's raw logits for every row of the chosen splits.

Writes `label/<split>.parquet`: the split's rows plus `logits` (a float32 list per row; logits, not
probabilities, so students can apply any temperature). Work is done in chunks of `label.chunk_rows`
that are each written atomically, so a killed run resumes at the first missing chunk.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from tqdm.auto import tqdm
from transformers import AutoModelForSequenceClassification, AutoTokenizer

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
from tinykd.environment import environment
from tinykd.teacher.encoding import encode_rows, predict_logits


@dataclass
class LabelResult:
    rows: dict[str, int]
    rows_per_second: float
    resumed_chunks: int = 0
    skipped: bool = False

    def summary(self) -> str:
        if self.skipped:
            return "label: up to date"
        counts = " ".join(f"{k}={v}" for k, v in self.rows.items())
        resumed = f", {self.resumed_chunks} chunks reused from an earlier run" if self.resumed_chunks else ""
        return f"label: {counts} at {self.rows_per_second:.1f} rows/s{resumed}"


def run(config: Config, paths: RunPaths) -> LabelResult:
    spec = config.label
    teacher_stamp = recorded_fingerprint(require(paths.teacher_metrics, "teacher"))
    summary_path = paths.label_dir / "summary.json"
    done = read_json(summary_path).get("splits", {}) if summary_path.exists() else {}
    # Each split has its own fingerprint, so adding a split (e.g. augmented rows) labels only that one.
    sources = {split: _source(paths, split) for split in config.label_splits}
    # A row cap joins the fingerprint only where it is set, so uncapped splits keep their earlier fingerprints.
    stamps = {split: fingerprint(config.task.max_length, spec.chunk_rows, teacher_stamp, source_stamp,
                                 *filter(None, [_row_cap(spec, split)]))
              for split, (_, source_stamp) in sources.items()}
    todo = [s for s in stamps if done.get(s, {}).get("fingerprint") != stamps[s] or not paths.labels(s).exists()]
    if not todo:
        return LabelResult(rows={}, rows_per_second=0.0, skipped=True)
    if spec.threads:
        torch.set_num_threads(spec.threads)

    tokenizer = AutoTokenizer.from_pretrained(paths.teacher_model)
    model = AutoModelForSequenceClassification.from_pretrained(paths.teacher_model)
    model.eval().requires_grad_(False)
    if torch.cuda.is_available():  # a lent GPU labels in seconds what 2 CPU cores take minutes for
        model.to("cuda")

    counts, computed, reused, seconds = {}, 0, 0, 0.0
    for split in todo:
        rows = pd.read_parquet(sources[split][0])
        cap = _row_cap(spec, split)
        if cap and len(rows) > cap:
            rows = rows.sample(n=cap, random_state=0).sort_index()  # keeps source order
        parts = paths.label_parts(split)
        _reset_if_stale(parts, stamps[split])
        chunks = range(0, len(rows), spec.chunk_rows)
        with tqdm(total=len(rows), desc=f"label {split}", unit="row", smoothing=0.1) as bar:
            for number, start in enumerate(chunks):
                part = parts / f"part-{number:05d}.parquet"
                chunk = rows.iloc[start : start + spec.chunk_rows]
                if part.exists():
                    reused += 1
                    bar.update(len(chunk))
                    continue
                started = time.perf_counter()
                features = encode_rows(tokenizer, chunk, config.task.max_length)
                logits = predict_logits(model, tokenizer, features, spec.batch_size, progress=bar)  # (n, K)
                seconds += time.perf_counter() - started
                computed += len(chunk)
                with atomic_path(part) as tmp:
                    pq.write_table(_with_logits(chunk, logits), tmp)
        table = pa.concat_tables(pq.read_table(parts / f"part-{n:05d}.parquet") for n in range(len(chunks)))
        with atomic_path(paths.labels(split)) as tmp:
            pq.write_table(table, tmp)
        shutil.rmtree(parts)
        counts[split] = table.num_rows
        done[split] = {"fingerprint": stamps[split], "rows": table.num_rows}
        write_json(summary_path, {"splits": done, "environment": environment(spec.threads)})

    rate = computed / seconds if seconds else 0.0
    write_json(summary_path, {"splits": done, "rows_per_second": round(rate, 1), "batch_size": spec.batch_size,
                              "environment": environment(spec.threads)})
    return LabelResult(rows=counts, rows_per_second=rate, resumed_chunks=reused)


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
