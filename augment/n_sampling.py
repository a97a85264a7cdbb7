"""n-sampling (ERNIE data distillation): keep one contiguous span of words of random length."""

from __future__ import annotations

import random
from dataclasses import dataclass

from tinykd.augment.op import AugmentOp
from tinykd.augment.words import Tagged


@dataclass(frozen=True)
class NSampling(AugmentOp):
    """Keep words [start, start + n) with n uniform in 1..len and start uniform in 0..len-n.

    The result is always a substring of the text. In a pair each text gets its own span: the two
    sides are different sentences, so one shared position would mean nothing.
    """

    name: str = "nsample"

    def apply(self, texts: list[Tagged], rng: random.Random) -> list[Tagged]:
        out = []
        for words in texts:
            length = rng.randint(1, len(words)) if words else 0
            start = rng.randint(0, len(words) - length)
            out.append(words[start : start + length])
        return out
