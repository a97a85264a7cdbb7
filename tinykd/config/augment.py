"""`augment`: the augmentation ops (one class per op, chosen by `op`) and how many rows each source row makes."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from tinykd.config.section import Section


class UnkOp(Section):
    """UNK noise: each word becomes the unknown token with probability p."""

    op: Literal["unk"]
    weight: float = Field(default=1.0, gt=0, description="relative share of new rows made by this op")
    p: float = Field(default=0.1, ge=0, le=1)


class PosOp(Section):
    """Same-POS substitution: each word becomes another dataset word with its jieba POS tag, with probability p."""

    op: Literal["pos"]
    weight: float = Field(default=1.0, gt=0)
    p: float = Field(default=0.1, ge=0, le=1)


class NSampleOp(Section):
    """n-sampling: a contiguous span of words of random length."""

    op: Literal["nsample"]
    weight: float = Field(default=1.0, gt=0)


class TextAttackOp(Section):
    """Any textattack `Transformation` by class name (needs the optional textattack environment)."""

    op: Literal["textattack"]
    weight: float = Field(default=1.0, gt=0)
    transformation: str = Field(description="class name in textattack.transformations, e.g. WordSwapRandomCharacterDeletion")
    args: dict[str, Any] = Field(default_factory=dict, description="keyword arguments of the transformation")


AugmentOpConfig = Annotated[UnkOp | PosOp | NSampleOp | TextAttackOp, Field(discriminator="op")]


def _default_ops() -> list:
    return [UnkOp(op="unk"), PosOp(op="pos"), NSampleOp(op="nsample")]


class AugmentConfig(Section):
    """ERNIE-style data augmentation of the train split; the teacher labels the new rows."""

    ops: list[AugmentOpConfig] = Field(default_factory=_default_ops, min_length=1)
    multiplier: int = Field(default=10, ge=1, description="new rows per source row (before duplicate removal)")
    seed: int = 0
    max_tries: int = Field(default=5, ge=1, description="attempts per new row to differ from the source and earlier rows")
    unk_token: str | None = Field(default=None, description="default: the teacher tokenizer's unknown token")

    @property
    def op_names(self) -> list[str]:
        """The names the augment stage writes in the `op` column, one per configured op."""
        return [f"textattack:{op.transformation}" if op.op == "textattack" else op.op for op in self.ops]
