"""`augment`: the augmentation ops (one class per op, chosen by `op`), how many rows each source row makes, and the
unlabeled in-domain pool (`unlabeled`) whose texts the teacher labels beside the augmented ones."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from tinykd.config.section import Section
from tinykd.tables import FORMATS

POOL_OP = "pool"  # the `op` of augmented.parquet rows that come from augment.unlabeled, not from an augmentation op
POOL_NAME = re.compile(r"[A-Za-z0-9_-]+")  # what augment.unlabeled[].name may hold (it goes into the op: pool:<name>)


def pool_op(name: str | None) -> str:
    """The `op` of a pool source's rows: `pool`, or `pool:<name>` for a source with a `name`."""
    return POOL_OP if name is None else f"{POOL_OP}:{name}"


def is_pool_op(op: str) -> bool:
    """Whether an augmented row with this `op` comes from the unlabeled pool (`pool` or `pool:<name>`), not from an
    augmentation op. Every test of that question goes through here."""
    return op == POOL_OP or op.startswith(f"{POOL_OP}:")


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


class Bm25PairOp(Section):
    """Pair tasks: one side of a train row with one of its `top_k` BM25 neighbours among the train texts."""

    op: Literal["bm25_pair"]
    weight: float = Field(default=1.0, gt=0)
    top_k: int = Field(default=10, ge=1, description="neighbours one is drawn from (BM25 over jieba words)")


class RandomPairOp(Section):
    """Pair tasks: one side of a train row with a train text drawn uniformly (nearly always a negative)."""

    op: Literal["random_pair"]
    weight: float = Field(default=1.0, gt=0)


PAIR_OPS = ("bm25_pair", "random_pair")  # ops that make pairs from two texts: pair tasks only

AugmentOpConfig = Annotated[UnkOp | PosOp | NSampleOp | TextAttackOp | Bm25PairOp | RandomPairOp,
                            Field(discriminator="op")]


def _default_ops() -> list:
    return [UnkOp(op="unk"), PosOp(op="pos"), NSampleOp(op="nsample")]


class UnlabeledSource(Section):
    """One table of unlabeled in-domain texts (ERNIE's `unsup_train_aug`): after the leak guard drops copies of
    dev, test and train texts, its rows join augmented.parquet as op `pool` (`pool:<name>` with a `name`) and the
    teacher labels them.

    The file and its columns are checked when the config loads, so a wrong path fails before any work."""

    path: Path = Field(description="TSV, CSV, JSONL or Parquet file (relative: to the working directory)")
    # validate_default: the checks below also run when these keys are left out
    format: Literal["tsv", "csv", "jsonl", "parquet"] | None = Field(
        default=None, validate_default=True, description="file format; inferred from the file suffix when omitted")
    text_column: str = Field(default="text_a", validate_default=True, description="the column holding the texts")
    domain_column: str | None = Field(default=None, description="the column naming each row's domain, for "
                                      "`domains` / `exclude_domains`")
    domains: list[str] | None = Field(default=None, min_length=1,
                                      description="keep only rows of these domains; default: every domain")
    exclude_domains: list[str] = Field(default_factory=list, description="drop rows of these domains")
    max_rows: int | None = Field(default=None, ge=1, description="a seeded random sample of at most this many rows, "
                                 "drawn after the domain filter and the leak guard; default: all")
    seed: int = Field(default=0, description="seed of the max_rows sample")
    name: str | None = Field(default=None, description="its rows get op `pool:<name>` instead of `pool`, so students "
                             "can take or leave them by `augment_ops`; letters, digits, `_` and `-`")

    @property
    def row_op(self) -> str:
        """The `op` of this source's rows in augmented.parquet."""
        return pool_op(self.name)

    @field_validator("name")
    @classmethod
    def _name_is_an_op_suffix(cls, name: str | None) -> str | None:
        if name is not None and not POOL_NAME.fullmatch(name):
            raise ValueError(f"a pool name may hold only letters, digits, '_' and '-' (its rows get op "
                             f"'{POOL_OP}:<name>')")
        return name

    @field_validator("path")
    @classmethod
    def _file_exists(cls, path: Path) -> Path:
        if not path.is_file():
            raise ValueError(f"file not found: {path} (relative paths are read from the working directory)")
        return path

    @field_validator("format")
    @classmethod
    def _format_known(cls, fmt: str | None, info: ValidationInfo) -> str | None:
        path = info.data.get("path")
        if fmt is None and path is not None and path.suffix.lower() not in FORMATS:
            raise ValueError(f"cannot infer the format of {path} from its suffix {path.suffix!r}; set format "
                             f"(one of tsv, csv, jsonl, parquet)")
        return fmt

    @field_validator("text_column", "domain_column")
    @classmethod
    def _column_exists(cls, column: str | None, info: ValidationInfo) -> str | None:
        path = info.data.get("path")
        if column is None or path is None or "format" not in info.data:
            return column  # the path or format already failed and says so
        columns = table_columns(path, info.data["format"] or FORMATS[path.suffix.lower()])
        if column not in columns:
            raise ValueError(f"{column!r} is not a column of {path} (its columns: {', '.join(columns)})")
        return column

    @model_validator(mode="after")
    def _domains_need_a_column(self) -> UnlabeledSource:
        if (self.domains is not None or self.exclude_domains) and self.domain_column is None:
            raise ValueError("domains / exclude_domains need domain_column (the column naming each row's domain)")
        return self


def table_columns(path: Path, fmt: str) -> list[str]:
    """The column names of a table, read from its header (first object for JSONL, schema for Parquet) only."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return list(pq.read_schema(path).names)
    with path.open(encoding="utf-8", errors="replace") as stream:
        if fmt == "jsonl":
            first = next((line for line in stream if line.strip()), "{}")
            try:
                record = json.loads(first)
            except json.JSONDecodeError:
                return []
            return list(record) if isinstance(record, dict) else []
        header = stream.readline().removeprefix("\ufeff").rstrip("\r\n")
    if fmt == "tsv":
        return header.split("\t")
    return next(csv.reader(io.StringIO(header)), [])


class AugmentConfig(Section):
    """ERNIE-style data augmentation of the train split, and an optional unlabeled pool; the teacher labels both."""

    ops: list[AugmentOpConfig] = Field(default_factory=_default_ops, min_length=1)
    multiplier: int = Field(default=10, ge=0, description="new rows per source row (before duplicate removal); 0: "
                            "no augmentation-op rows, the pool (`unlabeled`) only")
    seed: int = 0
    max_tries: int = Field(default=5, ge=1, description="attempts per new row to differ from the source and earlier rows")
    unk_token: str | None = Field(default=None, description="default: the teacher tokenizer's unknown token")
    unlabeled: list[UnlabeledSource] = Field(
        default_factory=list, description="unlabeled in-domain tables whose texts the teacher labels too (op `pool`, "
        "or `pool:<name>`), after a leak guard drops copies of dev, test and train texts")

    @model_validator(mode="after")
    def _makes_rows(self) -> AugmentConfig:
        if self.multiplier == 0 and not self.unlabeled:
            raise ValueError("multiplier 0 makes no augmented rows and augment.unlabeled lists no pool: "
                             "set multiplier >= 1 or add an unlabeled source")
        return self

    @model_validator(mode="after")
    def _pool_names_unique(self) -> AugmentConfig:
        names = [source.name for source in self.unlabeled]
        for j, name in enumerate(names):
            if name is not None and name in names[:j]:
                raise ValueError(f"unlabeled.{j}.name: duplicate pool name '{name}' (also "
                                 f"unlabeled.{names.index(name)}.name): each name is one op of the pool's rows")
        return self

    @property
    def op_names(self) -> list[str]:
        """The names the augment stage writes in the `op` column, one per configured op."""
        return [f"textattack:{op.transformation}" if op.op == "textattack" else op.op for op in self.ops]

    @property
    def row_ops(self) -> list[str]:
        """Every `op` augmented.parquet can hold: the configured ops (unless multiplier is 0), then each distinct
        pool op (`pool` for unnamed sources, `pool:<name>`) in the order of `unlabeled`."""
        return [*(self.op_names if self.multiplier else []), *dict.fromkeys(s.row_op for s in self.unlabeled)]
