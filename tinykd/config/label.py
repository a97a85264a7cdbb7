"""`label`: which splits the teacher labels, in what batches and resumable chunks."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tinykd.config.section import Section


class LabelConfig(Section):
    """Teacher labelling: raw logits for every row of the chosen splits."""

    splits: list[Literal["train", "dev", "test", "augmented"]] | None = Field(
        default=None, description="default: train, dev, test, plus augmented when an augment section is set"
    )
    batch_size: int = Field(default=64, ge=1)
    chunk_rows: int = Field(default=2048, ge=1, description="rows per resumable chunk")
    max_augmented_rows: int | None = Field(
        default=None, ge=1, description="label a seeded random sample of at most this many augmented rows "
        "(teacher inference is the CPU cost of data distillation); default: all")
    threads: int | None = Field(default=None, ge=1)
