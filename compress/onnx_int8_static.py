"""ONNX Runtime static int8 (QDQ): activation ranges calibrated once on train rows, then fixed.

Only MatMul/Gemm/Conv are quantized (LayerNorm, Softmax and GELU stay fp32): those carry the compute,
and quantizing the rest costs accuracy for little speed. Calibration: MinMax over `compress.calibration_rows`
seeded train rows. The graph is shape-inferred and cleaned first (`quant_pre_process`), as ORT advises.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from compress.backend import BuildContext
from compress.model_source import ModelSource
from compress.onnx_export import OrtRunner, max_logit_difference
from compress.onnx_fp32 import FILE
from compress.onnx_fp32 import unavailable as onnx_unavailable
from tinykd.errors import ArtifactError

OPS = ["MatMul", "Gemm", "Conv"]


def unavailable() -> str | None:
    return onnx_unavailable()


class _Batches:
    """A CalibrationDataReader over tokenized batches."""

    def __init__(self, batches: list[dict[str, np.ndarray]], names: list[str]) -> None:
        self.batches, self.names = iter(batches), names

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self.batches, None)
        return None if batch is None else {n: batch[n] for n in self.names}


def build(source: ModelSource, out: Path, context: BuildContext) -> dict:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not context.calibration:
        raise ArtifactError(f"{source.name}: static int8 needs calibration rows (compress.calibration_rows)")
    graph = context.built("onnx-fp32") / FILE
    with tempfile.TemporaryDirectory() as work:
        prepared = Path(work) / "prepared.onnx"
        quant_pre_process(str(graph), str(prepared), skip_symbolic_shape=True)
        names = OrtRunner(prepared, 1).names
        quantize_static(str(prepared), str(out / FILE), _Batches(context.calibration, names),
                        quant_format=QuantFormat.QDQ, op_types_to_quantize=OPS, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax)
    difference = max_logit_difference(source, source.load_torch(), OrtRunner(out / FILE, threads=1))
    rows = sum(len(b["input_ids"]) for b in context.calibration)
    return {"file": FILE, "format": "QDQ", "quantized_ops": OPS, "calibration": "MinMax",
            "calibration_rows": rows, "max_abs_logit_diff_vs_torch": difference}


def load(source: ModelSource, out: Path, threads: int) -> OrtRunner:
    return OrtRunner(out / FILE, threads)
