"""ONNX Runtime fp32: the model exported to ONNX (dynamic batch and sequence axes), checked against torch."""

from __future__ import annotations

from pathlib import Path

from tinykd.compress.backend import BuildContext
from tinykd.compress.model_source import ModelSource
from tinykd.compress.onnx_export import export_onnx, verify
from tinykd.onnx_graph import FP32_ATOL, OrtRunner

FILE = "model.onnx"


def unavailable() -> str | None:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as error:
        return f"needs {error.name} (pip install onnx onnxruntime)"
    return None


def build(source: ModelSource, out: Path, context: BuildContext) -> dict:
    model = source.load_torch()
    export_onnx(source, model, out / FILE, context.opset)
    return {"file": FILE, "max_abs_logit_diff_vs_torch": verify(source, model, out / FILE, FP32_ATOL),
            "tolerance": FP32_ATOL}


def load(source: ModelSource, out: Path, threads: int, spin_wait: bool = True) -> OrtRunner:
    return OrtRunner(out / FILE, threads, spin_wait)
