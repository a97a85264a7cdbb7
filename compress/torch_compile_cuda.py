"""`torch.compile` of the fp16 model on CUDA (inductor; dynamic shapes, since batch and length vary per call).

Compilation happens on the first calls of each new shape family, which the bench's warm-up absorbs.
"""

from __future__ import annotations

from pathlib import Path

import torch

from tinykd.compress.backend import BuildContext
from tinykd.compress.cuda_runner import CudaRunner, cuda_missing
from tinykd.compress.model_source import ModelSource


def unavailable() -> str | None:
    return cuda_missing()


def build(source: ModelSource, out: Path, context: BuildContext) -> dict:
    return {"weights": str(source.directory), "dtype": "float16", "compile": "inductor, dynamic=True",
            "device": torch.cuda.get_device_name(0), "torch": torch.__version__}


def load(source: ModelSource, out: Path, threads: int, spin_wait: bool = True) -> CudaRunner:
    model = source.load_torch().half().cuda().eval()
    return CudaRunner(torch.compile(model, dynamic=True))
