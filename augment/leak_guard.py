"""The leak guard: rows the teacher labels for the students must not be copies of dev or test texts.

A student that trains on a teacher-labelled copy of a test text is judged on a text it has seen with (nearly) the
right label: its test accuracy would overstate what it learned. Unlabeled pools are scraped from the same sites as
the task's data, so copies are common there, often with another width, case, spacing or punctuation. The guard
compares rows exactly and after `normalised` (below), and says which split a row copies and how.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping

Row = tuple[str, ...]  # a row's texts: (text_a,) or (text_a, text_b)

# Unicode categories dropped by `normalised`: punctuation (P*), symbols (S*: ￥, +, emoji, ...), separators (Z*:
# spaces) and control / format characters (C*: tabs, newlines, zero-width spaces).
_DROPPED_CATEGORIES = ("P", "S", "Z", "C")


def normalised(text: str) -> str:
    """The text as the guard compares it: NFKC (full-width letters, digits and punctuation become half-width),
    casefolded, without whitespace, punctuation and symbols. "ＡＢＣ，很 好！" and "abc很好" are the same text."""
    return "".join(ch for ch in unicodedata.normalize("NFKC", text).casefold()
                   if not ch.isspace() and not unicodedata.category(ch).startswith(_DROPPED_CATEGORIES))


def row_key(row: Row) -> Row | None:
    """The normalised row, or None when a text is nothing but punctuation, symbols and spaces: such a row would
    equal every other one of its kind ("！！！" and "。。。"), so it is compared exactly only."""
    key = tuple(normalised(text) for text in row)
    return key if all(key) else None


class LeakGuard:
    """Which protected split (and how) a row copies: `match(row)` -> ("dev", "exact"), ("test", "normalised"),
    ... or None. Splits are checked in the order given, an exact copy before a normalised one."""

    def __init__(self, splits: Mapping[str, Iterable[Row]]) -> None:
        self._exact: dict[str, set[Row]] = {}
        self._normalised: dict[str, set[Row]] = {}
        for name, rows in splits.items():
            # A pair is protected in either order: (b, a) puts the same two texts before a student as (a, b).
            rows = [order for row in map(tuple, rows) for order in (row, row[::-1])]  # (a,) reversed is itself
            self._exact[name] = set(rows)
            self._normalised[name] = {key for key in map(row_key, rows) if key is not None}

    def match(self, row: Row) -> tuple[str, str] | None:
        key = row_key(row)
        for name in self._exact:
            if row in self._exact[name]:
                return name, "exact"
            if key is not None and key in self._normalised[name]:
                return name, "normalised"
        return None
