"""`bench` and `budget`: the timing sweep and the serving target it is judged against."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, model_validator

from tinykd.config.compress import Backend
from tinykd.config.section import Section


class BenchConfig(Section):
    """The timing sweep: every model x backend x batch size x sequence length x thread count."""

    models: list[str] | None = Field(default=None, description="default: compress.models")
    backends: list[Backend] | None = Field(default=None, description="default: compress.backends")
    batch_sizes: list[int] = Field(default_factory=lambda: [1, 32], min_length=1)
    seq_lengths: list[int] | None = Field(
        default=None, min_length=1, description="tokenizer truncation lengths; default: [task.max_length]")
    threads: list[int] = Field(default_factory=lambda: [2], min_length=1)
    rows: int = Field(default=512, ge=1, description="test rows served as requests: the first `rows`, shuffled with "
                      "`seed` and cut to a multiple of every batch size; every cell serves whole passes over them")
    seed: int = Field(default=0, description="seed of the request order")
    warmup_s: float = Field(default=1.0, ge=0)
    duration_s: float = Field(default=3.0, gt=0, description="minimum timed seconds per repeat (whole passes)")
    min_calls: int = Field(default=100, ge=1, description="minimum calls per cell over all its repeats, so its p99 "
                           "is a percentile and not the maximum of a few calls (whole passes)")
    repeats: int = Field(default=3, ge=1)
    floor: bool = Field(default=True, description="also fit and time the TF-IDF + logistic regression floor")
    candidates: int = Field(default=0, ge=0, description="pair tasks: also time the query-against-cached-candidates "
                            "shape against this many distinct second texts of the test split (0: not timed)")
    candidate_queries: int = Field(default=16, ge=1, description="queries of that shape, one call each (the first "
                                   "texts of the request sequence), served in whole passes")
    footprint: bool = Field(default=True, description="measure each model x backend's peak RSS in a child process "
                            "(a few seconds per pair); false: NaN memory columns")

    @model_validator(mode="after")
    def _rows_fill_every_batch_size(self) -> BenchConfig:
        step = math.lcm(*self.batch_sizes)
        if self.rows < step:
            raise ValueError(f"rows {self.rows} cannot fill one call of each of batch_sizes {self.batch_sizes}: "
                             f"every cell serves whole passes over the same requests, so rows must be at least "
                             f"{step} (their least common multiple)")
        return self


class BudgetConfig(Section):
    """The serving target a model must meet: `qps` requests/s with p99 latency under `p99_ms`."""

    qps: float = Field(gt=0)
    p99_ms: float = Field(gt=0)
    batch: int = Field(default=1, ge=1, description="requests per model call")
    threads: int = Field(default=2, ge=1, description="threads per serving process")
    device: Literal["cpu", "cuda"] = "cpu"
    machines: int | None = Field(
        default=1, ge=1, description="machines like the bench machine the target may use (processes of `threads` "
        "threads, one per GPU on cuda); null: any number (the verdict still says how many)")
