"""The tokenizer of the small students (BOW, TextCNN, BiLSTM): jieba words or characters -> ids.

The vocabulary is built from the training texts (capped at `max_size` most frequent tokens seen at
least `min_freq` times) and saved beside the model, so a student directory is self-contained.
The teacher's unknown token (`<unk>` in augmented rows) maps to the student's [UNK].
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Iterable, Literal

import torch

PAD, UNK = "[PAD]", "[UNK]"
FILE = "tinykd_tokenizer.json"
UNK_ALIASES = ("<unk>", "[UNK]")
_ALIAS_PATTERN = re.compile("(" + "|".join(re.escape(a) for a in UNK_ALIASES) + ")")


class StudentTokenizer:
    def __init__(self, tokens: list[str], level: Literal["word", "char"], max_length: int) -> None:
        if tokens[:2] != [PAD, UNK]:
            raise ValueError("the vocabulary must start with [PAD], [UNK]")
        self.tokens, self.level, self.max_length = tokens, level, max_length
        self.ids = {token: i for i, token in enumerate(tokens)}
        self.pad_id, self.unk_id = 0, 1

    def __len__(self) -> int:
        return len(self.tokens)

    @classmethod
    def build(cls, token_lists: Iterable[list[str | None]], level: Literal["word", "char"], max_size: int,
              min_freq: int, max_length: int) -> StudentTokenizer:
        """Vocabulary of the `max_size` - 2 most frequent tokens seen `min_freq` times (ties by token)."""
        counts = Counter(token for tokens in token_lists for token in tokens if token is not None)
        kept = [t for t, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if n >= min_freq]
        return cls([PAD, UNK, *kept[: max_size - 2]], level, max_length)

    def split(self, text: str) -> list[str | None]:
        return split_text(text, self.level)

    def token_ids(self, text: str) -> list[int]:
        """Ids of one text, truncated to `max_length` (at least one id: an empty text is [UNK])."""
        return self.ids_of(self.split(text))

    def ids_of(self, tokens: list[str | None]) -> list[int]:
        """Ids of already split tokens (see `split`), truncated to `max_length`, never empty."""
        ids = [self.unk_id if t is None else self.ids.get(t, self.unk_id) for t in tokens[: self.max_length]]
        return ids or [self.unk_id]

    def pad(self, sequences: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids, mask), both (B, L) with L the longest sequence in the batch."""
        length = max(len(s) for s in sequences)
        ids = torch.full((len(sequences), length), self.pad_id, dtype=torch.long)
        for row, seq in enumerate(sequences):
            ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        return ids, ids != self.pad_id

    def save_pretrained(self, directory: Path) -> None:
        payload = {"level": self.level, "max_length": self.max_length, "tokens": self.tokens}
        (Path(directory) / FILE).write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def from_pretrained(cls, directory: Path) -> StudentTokenizer:
        payload = json.loads((Path(directory) / FILE).read_text(encoding="utf-8"))
        return cls(payload["tokens"], payload["level"], payload["max_length"])


@cache
def _jieba():
    """jieba, imported on first use: char-level students and the tiny-transformer path never need it."""
    import jieba

    jieba.setLogLevel(logging.WARNING)
    return jieba


def split_text(text: str, level: str) -> list[str | None]:
    """Tokens of `text`; None stands for an unknown-token alias written in the text."""
    out: list[str | None] = []
    for piece in _ALIAS_PATTERN.split(text):
        if piece in UNK_ALIASES:
            out.append(None)
        elif piece:
            tokens = _jieba().lcut(piece) if level == "word" else list(piece)
            out.extend(t for t in tokens if not t.isspace())
    return out
