"""ONNX Runtime fp32: the model exported to ONNX (dynamic batch and sequence axes), checked against torch; a siamese
pair model also as its embed and compare graphs (the cached-candidate serving shape, `siamese_parts`)."""

from __future__ import annotations

from pathlib import Path

from tinykd.compress.backend import BuildContext
from tinykd.compress.model_source import ModelSource
from tinykd.compress.onnx_export import export_onnx, verify
from tinykd.compress.siamese_parts import export_parts
from tinykd.compress.siamese_parts import load_ort_embedder as load_embedder  # noqa: F401  this backend's
from tinykd.onnx_graph import FP32_ATOL, OrtRunner

FILE = "model.onnx"
RECIPE = 2  # build version, in the compress fingerprint: 2: a siamese model also gets its embed / compare graphs


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
    facts = {"file": FILE, "max_abs_logit_diff_vs_torch": verify(source, model, out / FILE, FP32_ATOL),
             "tolerance": FP32_ATOL}
    return facts | (export_parts(source, model, out, context.opset) if source.siamese else {})


def load(source: ModelSource, out: Path, threads: int, spin_wait: bool = True) -> OrtRunner:
    return OrtRunner(out / FILE, threads, spin_wait)
