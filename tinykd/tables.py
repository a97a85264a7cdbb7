"""Readers for task tables on disk: TSV, CSV, JSONL and Parquet.

Each reader returns every column as text plus a `line` column (the 1-based line in the file, or the
row number for Parquet) so that later checks can say exactly where a bad row is. Bytes are decoded
strictly as UTF-8: a bad byte is an error with its line number, never a silently mangled text.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pandas as pd

from tinykd.errors import DataError

FORMATS = {".tsv": "tsv", ".txt": "tsv", ".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet"}


def infer_format(path: Path, fmt: str | None) -> str:
    if fmt:
        return fmt
    try:
        return FORMATS[path.suffix.lower()]
    except KeyError:
        raise DataError(f"{path}: cannot infer the format from suffix {path.suffix!r}; set task.source.format") from None


def read_table(path: Path, fmt: str | None = None) -> pd.DataFrame:
    """Read one table; all values as `str` (missing as ""), plus an int `line` column."""
    fmt = infer_format(path, fmt)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    if fmt == "parquet":
        frame = pd.read_parquet(path)
        frame = frame.astype(object).where(frame.notna(), "").astype(str)
        frame["line"] = range(1, len(frame) + 1)
        return frame
    text = _decode(path)
    if fmt == "jsonl":
        return _read_jsonl(path, text)
    return _read_delimited(path, text, "\t" if fmt == "tsv" else ",")


def _decode(path: Path) -> str:
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise DataError(
            f"{path}:{line}: bytes {data[err.start:err.end]!r} are not valid UTF-8 (re-encode the file as UTF-8)"
        ) from None
    return text.removeprefix("\ufeff")


def _read_delimited(path: Path, text: str, sep: str) -> pd.DataFrame:
    # TSV files in the wild (ChnSentiCorp, LCQMC) contain bare quotes inside texts: no quoting for TSV.
    quoting = csv.QUOTE_NONE if sep == "\t" else csv.QUOTE_MINIMAL
    try:
        frame = pd.read_csv(
            io.StringIO(text), sep=sep, dtype=str, keep_default_na=False, quoting=quoting,
            skip_blank_lines=False, engine="python" if sep == "\t" else "c",
        )
    except pd.errors.ParserError as err:
        raise DataError(f"{path}: {err}") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty (expected a header row and data rows)") from None
    # Without quoting, a data row is exactly one physical line after the header.
    frame["line"] = range(2, len(frame) + 2)
    if sep == "\t":
        return frame
    # CSV fields may span lines; recover physical line numbers from the reader itself.
    lines, reader = [], csv.reader(io.StringIO(text))
    next(reader, None)
    while True:
        line_before = reader.line_num
        if next(reader, None) is None:
            break
        lines.append(line_before + 1)
    if len(lines) == len(frame):
        frame["line"] = lines
    return frame


def _read_jsonl(path: Path, text: str) -> pd.DataFrame:
    records, lines = [], []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}:{number}: not valid JSON ({err.msg})") from None
        if not isinstance(record, dict):
            raise DataError(f"{path}:{number}: expected a JSON object per line, got {type(record).__name__}")
        records.append({k: "" if v is None else str(v) for k, v in record.items()})
        lines.append(number)
    frame = pd.DataFrame.from_records(records)
    frame["line"] = lines
    return frame
