"""torch fp16 eager on CUDA: the GPU reference (half-precision weights and activations)."""

from __future__ import annotations

from pathlib import Path

import torch

from tinykd.compress.backend import BuildContext
from tinykd.compress.cuda_runner import CudaRunner, cuda_missing
from tinykd.compress.model_source import ModelSource


def unavailable() -> str | None:
    return cuda_missing()


def build(source: ModelSource, out: Path, context: BuildContext) -> dict:
    return {"weights": str(source.directory), "dtype": "float16", "device": torch.cuda.get_device_name(0)}


def load(source: ModelSource, out: Path, threads: int, spin_wait: bool = True) -> CudaRunner:
    return CudaRunner(source.load_torch().half().cuda().eval())
