"""ONNX Runtime dynamic int8: weights quantized ahead of time, activations per call (no calibration data).

For transformers it quantizes the optimized graph when the onnx-optimized backend was built (fused
attention keeps its MatMuls quantizable and is what ORT recommends), else the plain fp32 export.
"""

from __future__ import annotations

from pathlib import Path

from compress.backend import BuildContext
from compress.model_source import ModelSource
from compress.onnx_export import OrtRunner, max_logit_difference
from compress.onnx_fp32 import FILE
from compress.onnx_fp32 import unavailable as onnx_unavailable


def unavailable() -> str | None:
    return onnx_unavailable()


def quantization_input(source: ModelSource, context: BuildContext) -> tuple[Path, str]:
    """The fp32 graph to quantize and the backend it came from."""
    if source.family == "hf":
        try:
            optimized = context.built("onnx-optimized") / FILE
            if optimized.is_file():
                return optimized, "onnx-optimized"
        except Exception:  # not built in this run: quantize the plain export
            pass
    return context.built("onnx-fp32") / FILE, "onnx-fp32"


def build(source: ModelSource, out: Path, context: BuildContext) -> dict:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph, origin = quantization_input(source, context)
    from onnx import TensorProto

    # Fused ops (com.microsoft domain) defeat ONNX shape inference; their outputs are fp32.
    quantize_dynamic(str(graph), str(out / FILE), weight_type=QuantType.QInt8, per_channel=True,
                     extra_options={"DefaultTensorType": TensorProto.FLOAT})
    difference = max_logit_difference(source, source.load_torch(), OrtRunner(out / FILE, threads=1))
    return {"file": FILE, "quantized_from": origin, "weights": "int8 per channel", "activations": "uint8 per call",
            "max_abs_logit_diff_vs_torch": difference}


def load(source: ModelSource, out: Path, threads: int) -> OrtRunner:
    return OrtRunner(out / FILE, threads)
