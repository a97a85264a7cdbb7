"""`label`: which splits the teacher labels, in what batches and resumable chunks, and on which engine."""

from __future__ import annotations

import importlib.util
from typing import Literal

from pydantic import Field

from tinykd.config.section import Section
from tinykd.errors import ConfigError

RAY_INSTALL_HINT = "label.engine: 'ray' needs Ray Data, not installed here: run `make ray` or pip install 'tinykd[ray]'"


def installed(package: str) -> bool:
    """Whether `package` can be imported here (found without importing it: importing ray takes a second)."""
    return importlib.util.find_spec(package) is not None


class LabelConfig(Section):
    """Teacher labelling: raw logits for every row of the chosen splits."""

    splits: list[Literal["train", "dev", "test", "augmented"]] | None = Field(
        default=None, description="default: train, dev, test, plus augmented when an augment section is set"
    )
    batch_size: int = Field(default=64, ge=1)
    chunk_rows: int = Field(default=2048, ge=1, description="rows per resumable chunk")
    max_augmented_rows: int | None = Field(
        default=None, ge=1, description="label a seeded random sample of at most this many rows made by the "
        "augmentation ops (teacher inference is the CPU cost of data distillation); the pool's rows are all labelled "
        "(their cap is augment.unlabeled[].max_rows); default: all")
    threads: int | None = Field(
        default=None, ge=1, description="torch threads: of the process (local; default all cores) or of each "
        "actor (ray; default 1)")
    runtime: Literal["onnx", "torch"] = Field(
        default="onnx", description="onnx: the teacher's fused fp32 ONNX Runtime graph, used only where its logits "
        "match torch's within 1e-4 on the shortest and longest rows of the first missing chunk (else torch labels); "
        "about 2x the rows/s of torch on CPU. torch: always torch. A CUDA device always labels with torch. Not part "
        "of the fingerprint (the logits agree within 1e-4)")
    engine: Literal["local", "ray"] = Field(
        default="local", description="local: this process (on CUDA when present); ray: a Ray Data actor pool, "
        "one teacher per actor (the optional extra `tinykd[ray]`). Not part of the fingerprint: both write the "
        "same chunks, so a run may resume on the other engine")
    ray_address: str | None = Field(
        default=None, description="None: start a local Ray on this machine; 'auto' or 'ray://host:10001': join "
        "that cluster (its nodes need tinykd installed)")
    ray_actors: int | None = Field(
        default=None, ge=1, description="actors in the pool; default: the cluster's CPUs // threads per actor")

    def require_engine_package(self, where: str = "") -> None:
        """Stop with one line when the chosen engine's package is not installed here; `where` is the file:line that
        sets `label.engine`. `check` and the label stage call it before any work, so a missing extra is not a
        traceback after the stages before it have run."""
        if self.engine == "ray" and not installed("ray"):
            raise ConfigError(f"{where}: {RAY_INSTALL_HINT}" if where else RAY_INSTALL_HINT)
