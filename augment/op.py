"""What every augmentation op is: `apply` rewrites tagged texts with a given RNG; calling it is a shortcut.

`apply` takes one text (single-text tasks) or two (pairs) so an op can treat both sides consistently.
The stage tags each source row once and calls `apply` many times; `op(text, seed)` tags on the fly,
for use in a notebook or a test.
"""

from __future__ import annotations

import random

from tinykd.augment.words import Tagged, join, tag


class AugmentOp:
    name: str

    def prepare(self, texts: list[str]) -> None:
        """Called once by the stage with every source text; ops that batch outside work override it."""

    def apply(self, texts: list[Tagged], rng: random.Random) -> list[Tagged]:
        raise NotImplementedError

    def __call__(self, text: str | tuple[str, str], seed: int = 0) -> str | tuple[str, ...]:
        texts = [text] if isinstance(text, str) else list(text)
        out = [join(words) for words in self.apply([tag(t) for t in texts], random.Random(seed))]
        return out[0] if isinstance(text, str) else tuple(out)
