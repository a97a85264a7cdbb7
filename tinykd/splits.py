"""Deterministic, label-stratified splits and subsamples (so a capped run keeps the label balance)."""

from __future__ import annotations

import pandas as pd
from sklearn.model_selection import train_test_split


def stratified_split(rows: pd.DataFrame, fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(kept, held out) with `fraction` of the rows held out and the label balance kept in both."""
    keep, held = train_test_split(rows, test_size=fraction, random_state=seed, stratify=rows["label"])
    return keep.reset_index(drop=True), held.reset_index(drop=True)


def stratified_sample(rows: pd.DataFrame, limit: int | None, seed: int) -> pd.DataFrame:
    """At most `limit` rows with the label balance kept; all rows when `limit` is None or not smaller."""
    if limit is None or len(rows) <= limit:
        return rows.reset_index(drop=True)
    kept, _ = train_test_split(rows, train_size=limit, random_state=seed, stratify=rows["label"])
    return kept.reset_index(drop=True)
