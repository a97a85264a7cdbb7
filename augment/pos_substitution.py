"""Same-POS substitution (ERNIE data distillation): words swapped for other words with the same POS tag.

The replacement vocabulary is the dataset's own: `PosIndex` collects every word of the training texts
under its jieba POS tag, once per dataset (the augment stage caches it beside its output).
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable

from tinykd.augment.op import AugmentOp
from tinykd.augment.words import Tagged, Word


@dataclass(frozen=True)
class PosIndex:
    """POS tag -> the distinct words of the dataset with that tag (sorted, so draws are reproducible)."""

    words: dict[str, tuple[str, ...]]

    @classmethod
    def build(cls, tagged_texts: Iterable[Tagged]) -> PosIndex:
        buckets: dict[str, set[str]] = defaultdict(set)
        for words in tagged_texts:
            for w in words:
                if w.is_word:
                    buckets[w.pos].add(w.text)
        return cls({pos: tuple(sorted(ws)) for pos, ws in sorted(buckets.items())})

    def to_json(self) -> dict[str, list[str]]:
        return {pos: list(ws) for pos, ws in self.words.items()}

    @classmethod
    def from_json(cls, data: dict[str, list[str]]) -> PosIndex:
        return cls({pos: tuple(ws) for pos, ws in data.items()})


@dataclass(frozen=True)
class PosSubstitution(AugmentOp):
    """Replace each word, with probability `p` (default 0.1), by a random *other* word of its POS tag.

    A word whose tag has no other word in the index stays. One replacement per distinct word, so a
    word shared by both texts of a pair is replaced the same way in both.
    """

    index: PosIndex = field(repr=False)
    p: float = 0.1
    name: str = "pos"

    def apply(self, texts: list[Tagged], rng: random.Random) -> list[Tagged]:
        chosen: dict[str, Word] = {}
        out = []
        for words in texts:
            out.append(tuple(self._replace(w, chosen, rng) if w.is_word else w for w in words))
        return out

    def _replace(self, word: Word, chosen: dict[str, Word], rng: random.Random) -> Word:
        if word.text not in chosen:
            bucket = self.index.words.get(word.pos, ())
            replace = len(bucket) > 1 and rng.random() < self.p
            if replace:
                # Draw among the others without building a filtered copy of a large bucket.
                pick = rng.randrange(len(bucket) - 1)
                other = bucket[pick] if bucket[pick] != word.text else bucket[-1]
                chosen[word.text] = Word(other, word.pos)
            else:
                chosen[word.text] = word
        return chosen[word.text]
