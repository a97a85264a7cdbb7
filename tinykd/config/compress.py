"""`compress`: which models go through which backends."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tinykd.backend_table import BACKENDS
from tinykd.config.section import Section

DEFAULT_BACKENDS = tuple(name for name, info in BACKENDS.items() if info.default)  # the CPU ones of this environment
Backend = Literal[tuple(BACKENDS)]


class CompressConfig(Section):
    """Which models go through which export/quantization backends (`compressed/<model>/<backend>/`)."""

    models: list[str] | None = Field(
        default=None, description="'teacher' and/or student names; default: the teacher and every student")
    backends: list[Backend] = Field(default_factory=lambda: list(DEFAULT_BACKENDS), min_length=1)
    calibration_rows: int = Field(default=256, ge=1, description="train rows that calibrate static int8")
    eval_batch_size: int = Field(default=64, ge=1, description="batch size of the test-split accuracy check")
    opset: int = Field(default=17, ge=13, description="ONNX opset of the export")
    threads: int | None = Field(default=None, ge=1)
