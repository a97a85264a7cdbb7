"""What every backend module provides, and the table that maps a backend name to its module.

A backend module (`compress/<name>.py`) has three functions:
- `unavailable() -> str | None`: why it cannot run here (a missing package, no CUDA), or None;
- `build(source, out, context) -> dict`: write its artifacts into the empty directory `out` (the stage
  renames it into `compressed/<model>/<backend>/` only when build returns) and return facts worth
  recording (file names, quantized op counts);
- `load(source, out, threads, spin_wait) -> Runner`: a callable from tokenized numpy inputs to (B, K) float32
  logits, using `threads` intra-op threads; `spin_wait` says whether those threads may spin between calls (ONNX
  Runtime's default: fastest for calls back to back, as the bench makes them) or must sleep (a server whose cores
  its HTTP front end shares); a backend without such a choice ignores it.

A backend that can serve a siamese pair model against cached candidates also has
`load_embedder(source, out, threads, spin_wait) -> Embedder` (`tinykd.compress.siamese_parts`).

The table itself (`tinykd.backend_table`: name -> module, device, precision, ...) lives in the spine, where the
config checks backend names against it; the stage and the benchmark harness only ever go through it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

from tinykd.backend_table import BACKENDS, BackendInfo
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


def load_runner(name: str, source: ModelSource, directory: Path, threads: int, spin_wait: bool = True) -> Runner:
    """The runner of a built backend; a clear error when it was not built or cannot run here."""
    return _built_module(name, directory).load(source, directory, threads, spin_wait)


def load_embedder(name: str, source: ModelSource, directory: Path, threads: int, spin_wait: bool = True):
    """The `Embedder` of a built backend for a siamese model, or None where the backend has no cached-candidate
    shape (`load_embedder`)."""
    module = _built_module(name, directory)
    return module.load_embedder(source, directory, threads, spin_wait) if hasattr(module, "load_embedder") else None


def _built_module(name: str, directory: Path):
    """The module of a backend that can run here and whose build `directory` exists; else a clear error."""
    info = backend(name)
    reason = cannot_run(info)
    if reason:
        raise ArtifactError(f"backend {name} cannot run here: {reason}")
    if not directory.is_dir():
        raise ArtifactError(f"{directory}: missing; run the 'compress' stage first (python -m tinykd compress --config ...)")
    return info.load_module()
