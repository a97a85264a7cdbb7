"""The unlabeled pool (`augment.unlabeled`): in-domain texts the teacher labels beside the augmented rows.

Each source is read, filtered by domain, passed through the leak guard (copies of dev and test texts, and texts the
train split already holds, are dropped), freed of texts an earlier row of the pool already gave, and then sampled
down to `max_rows`. What each step dropped is counted per source, for `augment/summary.json`.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from tinykd.augment.leak_guard import LeakGuard, Row, row_key
from tinykd.config.augment import POOL_OP, UnlabeledSource
from tinykd.tables import read_table


@dataclass
class SourceCounts:
    """What happened to one source's rows, in the order the steps run."""

    path: str
    op: str = POOL_OP  # the op its rows get: `pool`, or `pool:<name>` for a named source
    read: int = 0
    after_domain_filter: int = 0
    dropped_empty: int = 0
    dropped_dev_exact: int = 0
    dropped_dev_normalised: int = 0
    dropped_test_exact: int = 0
    dropped_test_normalised: int = 0
    dropped_in_train: int = 0
    dropped_duplicate: int = 0
    after_guard: int = 0
    kept: int = 0  # after max_rows


def pool_rows(sources: list[UnlabeledSource], text_column: str, dev: list[Row], test: list[Row],
              train: list[Row]) -> tuple[pd.DataFrame, list[SourceCounts]]:
    """The pool's rows as augmented rows (`text_column`, source_row = line in its file, op `pool` or `pool:<name>`,
    source, domain) and each source's counts. Sources are read in order; a text an earlier source kept counts as a
    duplicate."""
    guard = LeakGuard({"dev": dev, "test": test, "train": train})
    seen: set = set()  # normalised texts (exact ones where nothing is left after normalising) already kept
    frames, counts = [], []
    for source in sources:
        frame, tally = _one_source(source, guard, seen)
        frames.append(frame.rename(columns={"text": text_column}))
        counts.append(tally)
    columns = [text_column, "source_row", "op", "source", "domain"]
    rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
    return rows[columns], counts


def _one_source(source: UnlabeledSource, guard: LeakGuard, seen: set) -> tuple[pd.DataFrame, SourceCounts]:
    table = read_table(source.path, source.format)
    tally = SourceCounts(path=str(source.path), op=source.row_op, read=len(table))
    domains = table[source.domain_column] if source.domain_column else pd.Series("", index=table.index)
    keep = pd.Series(True, index=table.index)
    if source.domains is not None:
        keep &= domains.isin(source.domains)
    if source.exclude_domains:
        keep &= ~domains.isin(source.exclude_domains)
    table, domains = table[keep], domains[keep]
    tally.after_domain_filter = len(table)

    records = []
    for text, line, domain in zip(table[source.text_column], table["line"], domains):
        text = text.strip()
        if not text:
            tally.dropped_empty += 1
            continue
        found = guard.match((text,))
        if found is not None:
            split, how = found
            field = "dropped_in_train" if split == "train" else f"dropped_{split}_{how}"
            setattr(tally, field, getattr(tally, field) + 1)
            continue
        key = row_key((text,)) or ("exact", text)
        if key in seen:
            tally.dropped_duplicate += 1
            continue
        seen.add(key)
        records.append((text, int(line), domain))
    tally.after_guard = len(records)

    if source.max_rows is not None and len(records) > source.max_rows:
        chosen = sorted(random.Random(source.seed).sample(range(len(records)), source.max_rows))
        dropped = [records[i] for i in sorted(set(range(len(records))) - set(chosen))]
        seen.difference_update(row_key((text,)) or ("exact", text) for text, _, _ in dropped)
        records = [records[i] for i in chosen]  # file order
    tally.kept = len(records)
    frame = pd.DataFrame.from_records(records, columns=["text", "source_row", "domain"])
    return frame.assign(op=source.row_op, source=str(source.path)), tally


def pool_digest(sources: list[UnlabeledSource]) -> list[str]:
    """A hash of each source file's bytes, for the augment stage's fingerprint: a changed pool re-runs augment."""
    digests = []
    for source in sources:
        digest = hashlib.sha256()
        with Path(source.path).open("rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
        digests.append(digest.hexdigest()[:16])
    return digests
