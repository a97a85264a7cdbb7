"""What every backend module provides, and the table that maps a backend name to its module.

A backend module (`compress/<name>.py`) has three functions:
- `unavailable() -> str | None`: why it cannot run here (a missing package, no CUDA), or None;
- `build(source, out, context) -> dict`: write its artifacts into the empty directory `out` (the stage
  renames it into `compressed/<model>/<backend>/` only when build returns) and return facts worth
  recording (file names, quantized op counts);
- `load(source, out, threads) -> Runner`: a callable from tokenized numpy inputs to (B, K) float32 logits,
  using `threads` intra-op threads.

The stage and the benchmark harness only ever go through this table.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Callable, Protocol

import numpy as np

from tinykd.compress.model_source import ModelSource
from tinykd.errors import ArtifactError


class Runner(Protocol):
    def __call__(self, inputs: dict[str, np.ndarray]) -> np.ndarray:  # (B, K) float32 logits
        ...


@dataclass(frozen=True)
class BuildContext:
    """What a build may need besides the model: calibration batches, the opset, sibling backends' outputs."""

    calibration: list[dict[str, np.ndarray]] = field(default_factory=list)  # tokenized train batches
    opset: int = 17
    built: Callable[[str], Path] | None = None  # backend name -> its finished directory for this model (e.g. onnx-fp32)


@dataclass(frozen=True)
class BackendInfo:
    name: str
    module: str
    device: str  # "cpu" or "cuda"
    needs: tuple[str, ...] = ()  # backends whose artifacts this one starts from (built first)
    families: tuple[str, ...] = ("hf", "small")  # model families it applies to
    # What its matmuls compute in: a forward in the device's peak dtype (CPU fp32, CUDA fp16) cannot run faster
    # than that peak, so the bench flags a share above 100 % as a measurement error; int8 may exceed it.
    precision: str = "fp32"

    def load_module(self) -> ModuleType:
        return importlib.import_module(self.module)


BACKENDS: dict[str, BackendInfo] = {b.name: b for b in (
    BackendInfo("torch-fp32", "tinykd.compress.torch_fp32", "cpu"),
    BackendInfo("torch-int8", "tinykd.compress.torch_int8", "cpu", precision="int8"),
    BackendInfo("onnx-fp32", "tinykd.compress.onnx_fp32", "cpu"),
    BackendInfo("onnx-optimized", "tinykd.compress.onnx_optimized", "cpu", needs=("onnx-fp32",), families=("hf",)),
    BackendInfo("onnx-int8-dynamic", "tinykd.compress.onnx_int8_dynamic", "cpu", needs=("onnx-fp32",), precision="int8"),
    BackendInfo("onnx-int8-static", "tinykd.compress.onnx_int8_static", "cpu", needs=("onnx-fp32",), precision="int8"),
    BackendInfo("ipex", "tinykd.compress.ipex", "cpu"),
    BackendInfo("torch-fp16-cuda", "tinykd.compress.torch_fp16_cuda", "cuda", precision="fp16"),
    BackendInfo("torch-compile-cuda", "tinykd.compress.torch_compile_cuda", "cuda", precision="fp16"),
    BackendInfo("tensorrt", "tinykd.compress.tensorrt", "cuda", families=("hf",), precision="fp16"),
)}


def backend(name: str) -> BackendInfo:
    if name not in BACKENDS:
        raise ArtifactError(f"unknown backend {name!r}; known: {sorted(BACKENDS)}")
    return BACKENDS[name]


def cannot_run(info: BackendInfo) -> str | None:
    """Why a backend cannot run in this environment (module or package missing, no CUDA, ...), or None."""
    try:
        module = info.load_module()
    except ModuleNotFoundError as error:
        if error.name == info.module:
            return f"{info.module.replace('.', '/')}.py does not exist (backend not implemented)"
        return f"needs the package {error.name!r}, which is not installed"
    return module.unavailable()


def load_runner(name: str, source: ModelSource, directory: Path, threads: int) -> Runner:
    """The runner of a built backend; a clear error when it was not built or cannot run here."""
    info = backend(name)
    reason = cannot_run(info)
    if reason:
        raise ArtifactError(f"backend {name} cannot run here: {reason}")
    if not directory.is_dir():
        raise ArtifactError(f"{directory}: missing; run the 'compress' stage first (python -m tinykd compress --config ...)")
    return info.load_module().load(source, directory, threads)
