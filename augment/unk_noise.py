"""UNK noise (ERNIE data distillation): each word becomes the unknown token with probability `p`."""

from __future__ import annotations

import random
from dataclasses import dataclass

from tinykd.augment.op import AugmentOp
from tinykd.augment.words import NON_WORD_TAG, Tagged, Word


@dataclass(frozen=True)
class UnkNoise(AugmentOp):
    """Replace each word by `unk_token` with probability `p` (default 0.1).

    The decision is made once per distinct word, so in a text pair a word shared by both texts is
    masked in both or in neither. Punctuation and whitespace are left alone.
    """

    p: float = 0.1
    unk_token: str = "<unk>"
    name: str = "unk"

    def apply(self, texts: list[Tagged], rng: random.Random) -> list[Tagged]:
        masked: dict[str, bool] = {}
        out = []
        for words in texts:
            out.append(tuple(
                Word(self.unk_token, NON_WORD_TAG)
                if w.is_word and masked.setdefault(w.text, rng.random() < self.p) else w
                for w in words
            ))
        return out
