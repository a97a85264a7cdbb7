"""Turns a raw table into the task's canonical rows: `text_a[, text_b], label` (label as an index).

This is where bad rows are caught: a missing column, an empty text, a label outside the declared set.
With `task.bad_rows: error` the first bad row stops the run with its file and line; with `skip` bad rows
are dropped, counted, and their first examples reported — nothing disappears silently.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from tinykd.config import TaskConfig
from tinykd.errors import DataError

MAX_EXAMPLES = 5


@dataclass
class BadRows:
    """Bad rows dropped under `bad_rows: skip`: how many, and the first few (where and why)."""

    count: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, where: str, why: str) -> None:
        self.count += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(f"{where}: {why}")


def text_columns(task: TaskConfig) -> list[str]:
    """Canonical text column names: ['text_a'] or ['text_a', 'text_b']."""
    return ["text_a", "text_b"] if task.kind == "pair" else ["text_a"]


def canonical_rows(raw: pd.DataFrame, task: TaskConfig, origin: Path | str, bad: BadRows) -> pd.DataFrame:
    """Select, check and rename the task's columns; map labels to indices 0..K-1."""
    sources = [task.columns.text_a] + ([task.columns.text_b] if task.kind == "pair" else []) + [task.columns.label]
    missing = [c for c in sources if c not in raw.columns]
    if missing:
        present = [c for c in raw.columns if c != "line"]
        raise DataError(f"{origin}: missing column(s) {missing}; the file has columns {present} (see task.columns)")

    label_index = {value: i for i, value in enumerate(task.labels)}
    keep, labels = [], []
    texts = {name: raw[src].str.strip() for name, src in zip(text_columns(task), sources)}
    label_values = raw[task.columns.label].str.strip()
    for position, line in enumerate(raw["line"]):
        where = f"{origin}:{line}"
        why = None
        for name, src in zip(text_columns(task), sources):
            if not texts[name].iat[position]:
                why = f"empty text in column {src!r}"
                break
        label = label_values.iat[position]
        if why is None and label not in label_index:
            why = f"label {label!r} in column {task.columns.label!r} is not one of task.labels {task.labels}"
        if why is not None:
            if task.bad_rows == "error":
                raise DataError(f"{where}: {why} (set task.bad_rows: skip to drop such rows)")
            bad.add(where, why)
            continue
        keep.append(position)
        labels.append(label_index[label])

    rows = pd.DataFrame({name: texts[name].iloc[keep].to_numpy() for name in text_columns(task)})
    rows["label"] = pd.Series(labels, dtype="int64")
    return rows


def check_field_counts(path: Path, fmt: str) -> None:
    """Every row of a TSV or CSV file has as many fields as its header, or a DataError names its line.

    pandas fills a short row's missing fields with NaN, which passes the row checks as text; a long row is
    a misplaced separator. Either way the file is malformed, whatever `task.bad_rows` says.
    """
    if fmt not in ("tsv", "csv"):
        return
    try:
        text = path.read_bytes().decode("utf-8").removeprefix("\ufeff")
    except (OSError, UnicodeDecodeError):
        return  # the table reader reports it, with its line
    header: list[str] | None = None
    for line, fields in (_tsv_records(text) if fmt == "tsv" else _csv_records(text)):
        if fields in ([], [""]):
            continue  # a blank line: an empty row, which the row checks report
        if header is None:
            header = fields
        elif len(fields) != len(header):
            separated = "tab-separated" if fmt == "tsv" else "comma-separated"
            raise DataError(f"{path}:{line}: expected {len(header)} {separated} fields as in the header "
                            f"({', '.join(header)}), found {len(fields)} (a missing field, or a separator inside a text)")


def _tsv_records(text: str) -> Iterator[tuple[int, list[str]]]:
    """(physical line, fields): TSV is read without quoting, so a row is one line."""
    for number, line in enumerate(text.split("\n"), start=1):
        yield number, line.removesuffix("\r").split("\t")


def _csv_records(text: str) -> Iterator[tuple[int, list[str]]]:
    """(physical line a record starts on, fields): a quoted CSV field may span lines."""
    reader = csv.reader(io.StringIO(text, newline=""))
    while True:
        start = reader.line_num + 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error:
            return  # the table reader reports malformed quoting
        yield start, fields
