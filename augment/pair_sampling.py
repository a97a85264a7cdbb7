"""Pair sampling (Augmented SBERT, Thakur et al. 2021): new pairs made from the train split's own texts.

A matcher's gold pairs are few; a cross-encoder teacher can label any pair, so pairs sampled from the texts at hand
teach a student (a bi-encoder above all) much more than the gold pairs alone. Two ops, mixed by their weights:
- `bm25_pair`: one side of the row (drawn at random) with one of its `top_k` BM25 neighbours among the train texts
  (`bm25s` over jieba words). Neighbours share words, so they hold the hard negatives and most new positives;
- `random_pair`: one side with a train text drawn uniformly: nearly always a negative, the easy ones.
The drawn side comes first. A text is never paired with itself or with its own partner in the row. Texts equal to
a test text (exactly or after the leak guard's normalising) are never drawn, neither as the side nor as the
partner: the stage's leak guard then drops a new pair that copies a dev or test pair, in either order.
"""

from __future__ import annotations

import random

import numpy as np

from tinykd.augment.leak_guard import normalised
from tinykd.augment.op import AugmentOp
from tinykd.augment.words import Tagged, Word, join

# The pseudo-tag of a text drawn whole from the corpus: the stage only joins an op's output, so a drawn text is one
# "word" (POS tags are for the ops that rewrite words).
DRAWN_TAG = "pair"


class PairSampling(AugmentOp):
    """What both ops share: the corpus of drawable train texts (`prepare`) and the choice of the side to keep."""

    def __init__(self, excluded: set[str] = frozenset()) -> None:
        self.excluded = set(excluded) | {normalised(t) for t in excluded}
        self.corpus: list[str] = []
        self.position: dict[str, int] = {}

    def drawable(self, text: str) -> bool:
        return bool(text.strip()) and text not in self.excluded and normalised(text) not in self.excluded

    def prepare(self, texts: list[str]) -> None:
        """Every distinct source text (both sides of every train row) that may be drawn, in first-seen order."""
        self.corpus = [t for t in dict.fromkeys(texts) if self.drawable(t)]
        self.position = {text: i for i, text in enumerate(self.corpus)}

    def apply(self, texts: list[Tagged], rng: random.Random) -> list[Tagged]:
        if len(texts) != 2:
            raise ValueError(f"{self.name} makes pairs: it needs a pair task's rows (text_a, text_b)")
        pair = [join(words) for words in texts]
        sides = [i for i, text in enumerate(pair) if text in self.position]
        if not sides:
            return list(texts)  # neither side may be drawn: the row unchanged, which the stage retries, then drops
        side = pair[rng.choice(sides)]
        partner = self.partner(side, set(pair), rng)
        return list(texts) if partner is None else [(Word(side, DRAWN_TAG),), (Word(partner, DRAWN_TAG),)]

    def partner(self, side: str, taken: set[str], rng: random.Random) -> str | None:
        raise NotImplementedError


class RandomPairs(PairSampling):
    name = "random_pair"

    def partner(self, side: str, taken: set[str], rng: random.Random) -> str | None:
        if len(self.corpus) <= len(taken):
            return None
        while True:  # the corpus holds a text outside `taken` (at most 2 texts), so this ends quickly
            text = self.corpus[rng.randrange(len(self.corpus))]
            if text not in taken:
                return text


class Bm25Pairs(PairSampling):
    name = "bm25_pair"

    def __init__(self, top_k: int = 10, excluded: set[str] = frozenset()) -> None:
        super().__init__(excluded)
        self.top_k = top_k
        self.neighbours = np.zeros((0, 0), dtype=np.int64)

    def prepare(self, texts: list[str]) -> None:
        """BM25 over the corpus's words, and each text's `top_k` + 2 best neighbours (itself and its partner are
        skipped when drawing), retrieved once for all texts."""
        import bm25s
        import jieba

        super().prepare(texts)
        if len(self.corpus) < 2:
            return
        words = [[w for w in jieba.lcut(text) if w.strip()] or [text] for text in self.corpus]
        index = bm25s.BM25()
        index.index(words, show_progress=False)
        k = min(self.top_k + 2, len(self.corpus))
        self.neighbours, _ = index.retrieve(words, k=k, show_progress=False)  # (texts, k) corpus positions

    def partner(self, side: str, taken: set[str], rng: random.Random) -> str | None:
        found = [self.corpus[j] for j in self.neighbours[self.position[side]] if self.corpus[j] not in taken]
        return rng.choice(found[: self.top_k]) if found else None
