"""The tokenizer of the small students (BOW, TextCNN, BiLSTM): words or characters -> ids.

The vocabulary is built from the training texts (capped at `max_size` most frequent tokens seen at
least `min_freq` times) and saved beside the model, so a student directory is self-contained.
The teacher's unknown token (`<unk>` in augmented rows) maps to the student's [UNK].

Words come from a segmenter (`SEGMENTERS`): jieba in Python, or rjieba, the binding of the jieba-rs port in Rust.
A small student's call is mostly segmentation, so the segmenter sets its serving speed; it is saved with the
vocabulary, and serving splits with the segmenter the student was trained with. The two agree on most texts but
not all (jieba-rs has its own HMM for unseen words), so switching retrains the student.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from functools import cache
from itertools import chain
from pathlib import Path
from typing import Callable, Iterable, Literal

import numpy as np
import torch

PAD, UNK = "[PAD]", "[UNK]"
FILE = "tinykd_tokenizer.json"
UNK_ALIASES = ("<unk>", "[UNK]")
_ALIAS_PATTERN = re.compile("(" + "|".join(re.escape(a) for a in UNK_ALIASES) + ")")


class StudentTokenizer:
    def __init__(self, tokens: list[str], level: Literal["word", "char"], max_length: int,
                 segmenter: str = "jieba") -> None:
        if tokens[:2] != [PAD, UNK]:
            raise ValueError("the vocabulary must start with [PAD], [UNK]")
        if segmenter not in SEGMENTERS:
            raise ValueError(f"unknown segmenter {segmenter!r}; known: {', '.join(SEGMENTERS)}")
        self.tokens, self.level, self.max_length, self.segmenter = tokens, level, max_length, segmenter
        self.ids = {token: i for i, token in enumerate(tokens)}
        self.pad_id, self.unk_id = 0, 1

    def __len__(self) -> int:
        return len(self.tokens)

    @classmethod
    def build(cls, token_lists: Iterable[list[str | None]], level: Literal["word", "char"], max_size: int,
              min_freq: int, max_length: int, segmenter: str = "jieba") -> StudentTokenizer:
        """Vocabulary of the `max_size` - 2 most frequent tokens seen `min_freq` times (ties by token);
        `token_lists` were split by `segmenter` (see `split_text`)."""
        counts = Counter(token for tokens in token_lists for token in tokens if token is not None)
        kept = [t for t, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if n >= min_freq]
        return cls([PAD, UNK, *kept[: max_size - 2]], level, max_length, segmenter)

    def split(self, text: str) -> list[str | None]:
        return split_text(text, self.level, self.segmenter)

    def token_ids(self, text: str) -> list[int]:
        """Ids of one text, truncated to `max_length` (at least one id: an empty text is [UNK])."""
        return self.ids_of(self.split(text))

    def ids_of(self, tokens: list[str | None]) -> list[int]:
        """Ids of already split tokens (see `split`), truncated to `max_length`, never empty."""
        ids = [self.unk_id if t is None else self.ids.get(t, self.unk_id) for t in tokens[: self.max_length]]
        return ids or [self.unk_id]

    def pad(self, sequences: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids, mask), both (B, L) with L the longest sequence in the batch: torch tensors for training."""
        ids, mask = self.pad_arrays(sequences)
        return torch.from_numpy(ids), torch.from_numpy(mask)

    def pad_arrays(self, sequences: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        """(ids int64, mask bool), both (B, L): one vectorised fill, as serving calls it on every request (a torch
        tensor per row cost 22 us a text against 6 here, batches of 8 texts of 20-200 ids; a BOW call on a review
        costs ~120 us in all)."""
        lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
        ids = np.full((len(sequences), int(lengths.max())), self.pad_id, dtype=np.int64)
        filled = np.arange(ids.shape[1]) < lengths[:, None]  # (B, L): the positions each row's ids take
        ids[filled] = np.fromiter(chain.from_iterable(sequences), dtype=np.int64, count=int(lengths.sum()))
        return ids, filled

    def save_pretrained(self, directory: Path) -> None:
        payload = {"level": self.level, "max_length": self.max_length, "segmenter": self.segmenter,
                   "tokens": self.tokens}
        (Path(directory) / FILE).write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def from_pretrained(cls, directory: Path) -> StudentTokenizer:
        payload = json.loads((Path(directory) / FILE).read_text(encoding="utf-8"))
        # Students saved before the segmenter was recorded were all split by jieba.
        return cls(payload["tokens"], payload["level"], payload["max_length"], payload.get("segmenter", "jieba"))


@cache
def _jieba_cut() -> Callable[[str], list[str]]:
    """jieba's precise mode, imported on first use: char-level students and the tiny-transformer path never need
    it (its dictionary loads in ~1 s)."""
    import jieba

    jieba.setLogLevel(logging.WARNING)
    return jieba.lcut


@cache
def _rjieba_cut() -> Callable[[str], list[str]]:
    """jieba-rs's precise mode with HMM, as jieba's `lcut` (its dictionary is built into the binding)."""
    import rjieba

    return rjieba.cut


# Word segmenters by config name (`students[].segmenter`): each a loader of its `text -> words` function.
SEGMENTERS: dict[str, Callable[[], Callable[[str], list[str]]]] = {"jieba": _jieba_cut, "rjieba": _rjieba_cut}


def split_text(text: str, level: str, segmenter: str = "jieba") -> list[str | None]:
    """Tokens of `text` (words by `segmenter`, or characters); None stands for an unknown-token alias written in
    the text."""
    cut = SEGMENTERS[segmenter]() if level == "word" else list
    if _ALIAS_PATTERN.search(text) is None:  # most texts: one cut, no alias pieces to keep apart
        return [t for t in cut(text) if not t.isspace()]
    out: list[str | None] = []
    for piece in _ALIAS_PATTERN.split(text):
        if piece in UNK_ALIASES:
            out.append(None)
        elif piece:
            out.extend(t for t in cut(piece) if not t.isspace())
    return out
