"""Adapter: any textattack `Transformation`, named in the config, used as an augmentation op.

textattack is an optional extra (it pins transformers < 5, so it cannot share tinykd's environment):
this module is imported only when a config names a textattack op, and never by the core.
"""

from __future__ import annotations

import random
from typing import Any

from augment.op import AugmentOp
from augment.words import Tagged, join, tag
from tinykd.errors import ConfigError


class TextAttackTransformation(AugmentOp):
    """Applies `textattack.transformations.<name>(**args)` and keeps one of its outputs at random."""

    def __init__(self, name: str, args: dict[str, Any]) -> None:
        try:
            import textattack.transformations as transformations
        except ImportError:
            raise ConfigError(
                f"augment op textattack ({name}) needs the textattack package, which is not installed in this "
                "environment (see README 'Optional extras')"
            ) from None
        factory = getattr(transformations, name, None)
        if factory is None:
            raise ConfigError(f"augment op textattack: textattack.transformations has no {name!r}")
        self.transformation = factory(**args)
        self.name = f"textattack:{name}"

    def apply(self, texts: list[Tagged], rng: random.Random) -> list[Tagged]:
        from textattack.shared import AttackedText

        out = []
        for words in texts:
            candidates = self.transformation(AttackedText(join(words)))
            out.append(tag(rng.choice(candidates).text) if candidates else words)
        return out
