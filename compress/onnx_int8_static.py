"""ONNX Runtime static int8 (QDQ): activation ranges calibrated once on train rows, then fixed.

Quantized: the MatMul/Gemm/Conv nodes that multiply by a weight (per channel; activations uint8 per tensor,
MinMax ranges averaged over the calibration batches) and the word-embedding Gather. Kept fp32: LayerNorm,
Softmax, GELU, the attention score products (activation x activation), position/segment embeddings and,
in transformers, the FFN output projection, whose input is the GELU output with outliers one uint8 range
cannot hold. Measured on the ChnSentiCorp E5 teacher (200 test rows, 256 calibration rows; predictions
agreeing with torch fp32): every MatMul, plain MinMax 95.0 %; + moving average 96.5 %; weight MatMuls only
97.0 %; all but the FFN output 99.0 %; weight MatMuls but the FFN output 100 % (408 MB); + the word
embedding, this recipe, 99.5 % (accuracy 93.5 % vs 94.0 %, 134 MB of fp32's 448 MB); + every embedding
98.5 %. Percentile calibration (99.99) scored 90.0 % on 32 rows and needs ~20 GB at 256. On the full
test split (1200 rows, 2 threads): every MatMul 90.75 % (-2.17 points), 16.8 s; this recipe 92.25 %
(-0.67), 22.1 s; fp32 92.92 %, 30.2 s. The graph is shape-inferred and cleaned first (`quant_pre_process`),
as ORT advises.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from tinykd.compress.backend import BuildContext
from tinykd.compress.model_source import ModelSource
from tinykd.compress.onnx_export import max_logit_difference
from tinykd.compress.onnx_fp32 import FILE
from tinykd.compress.onnx_fp32 import unavailable as onnx_unavailable
from tinykd.errors import ArtifactError
from tinykd.onnx_graph import OrtRunner

RECIPE = 2  # build version, in the compress fingerprint: 2: weight MatMuls + word embedding, FFN output fp32 (1: every MatMul/Gemm/Conv)

OPS = ("MatMul", "Gemm", "Conv", "Gather")


def unavailable() -> str | None:
    return onnx_unavailable()


class _Batches:
    """A CalibrationDataReader over tokenized batches."""

    def __init__(self, batches: list[dict[str, np.ndarray]], names: list[str]) -> None:
        self.batches, self.names = iter(batches), names

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self.batches, None)
        return None if batch is None else {n: batch[n] for n in self.names}


def weight_nodes(source: ModelSource, graph: Path) -> tuple[list[str], int]:
    """Names of the nodes to quantize (see the module docstring), and how many OPS nodes the graph has."""
    import onnx

    model = onnx.load(str(graph))
    weights = {tensor.name: list(tensor.dims) for tensor in model.graph.initializer}
    token_ids = {i.name for i in model.graph.input if i.name.startswith("input_ids")}  # the word table's indices
    ffn_rows = None
    if source.family == "hf":
        from tinykd.compress.onnx_optimized import encoder_config

        ffn_rows = encoder_config(source).intermediate_size  # the FFN output MatMul's weight is (I, H)
    candidates = [node for node in model.graph.node if node.op_type in OPS]
    chosen = []
    for node in candidates:
        weight = weights.get(node.input[0 if node.op_type == "Gather" else 1])  # Gather's table is its data input
        if not weight or len(weight) < 2:
            continue  # activation x activation, or a shape computation
        if node.op_type == "Gather" and node.input[1] not in token_ids:
            continue  # position / segment tables: small, and quantizing them cost accuracy
        if node.op_type == "MatMul" and weight[0] == ffn_rows:
            continue
        chosen.append(node.name)
    return chosen, len(candidates)


def build(source: ModelSource, out: Path, context: BuildContext) -> dict:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not context.calibration:
        raise ArtifactError(f"{source.name}: static int8 needs calibration rows (compress.calibration_rows)")
    graph = context.built("onnx-fp32") / FILE
    with tempfile.TemporaryDirectory() as work:
        prepared = Path(work) / "prepared.onnx"
        quant_pre_process(str(graph), str(prepared), skip_symbolic_shape=True)
        nodes, candidates = weight_nodes(source, prepared)
        names = OrtRunner(prepared, 1).names
        quantize_static(str(prepared), str(out / FILE), _Batches(context.calibration, names),
                        quant_format=QuantFormat.QDQ, op_types_to_quantize=list(OPS), nodes_to_quantize=nodes,
                        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax, extra_options={"CalibMovingAverage": True})
    difference = max_logit_difference(source, source.load_torch(), OrtRunner(out / FILE, threads=1))
    rows = sum(len(b["input_ids"]) for b in context.calibration)
    return {"file": FILE, "format": "QDQ", "quantized_nodes": f"{len(nodes)}/{candidates} {'/'.join(OPS)}",
            "calibration": "MinMax, moving average over batches", "calibration_rows": rows,
            "max_abs_logit_diff_vs_torch": difference}


def load(source: ModelSource, out: Path, threads: int, spin_wait: bool = True) -> OrtRunner:
    return OrtRunner(out / FILE, threads, spin_wait)
