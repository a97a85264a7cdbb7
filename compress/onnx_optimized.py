"""ONNX Runtime with onnxruntime's transformer optimizer: attention, LayerNorm, GELU and bias fusions.

Starts from the onnx-fp32 export; applies to the `hf` family only (the fusions match BERT-style encoders).
The fused operator counts are recorded, since a fusion that silently does not match is the usual reason
this backend is no faster than plain onnx-fp32.
"""

from __future__ import annotations

import logging
from pathlib import Path

from compress.backend import BuildContext
from compress.model_source import ModelSource
from compress.onnx_export import FP32_ATOL, OrtRunner, verify
from compress.onnx_fp32 import FILE
from compress.onnx_fp32 import unavailable as onnx_unavailable


def unavailable() -> str | None:
    return onnx_unavailable()


def encoder_shape(source: ModelSource) -> tuple[int, int]:
    """(heads, hidden) of the BERT-style encoder (inside the mean-pool wrapper for E5 models)."""
    from transformers import AutoConfig

    import teacher.mean_pool  # noqa: F401  registers the wrapper's config class

    config = AutoConfig.from_pretrained(source.directory)
    encoder = getattr(config, "encoder", None) or config
    return encoder.num_attention_heads, encoder.hidden_size


def build(source: ModelSource, out: Path, context: BuildContext) -> dict:
    from onnxruntime.transformers.optimizer import optimize_model

    heads, hidden = encoder_shape(source)
    logging.getLogger("onnxruntime.transformers").setLevel(logging.ERROR)  # per-fusion INFO lines
    optimized = optimize_model(str(context.built("onnx-fp32") / FILE), model_type="bert", num_heads=heads,
                               hidden_size=hidden, opt_level=1)
    optimized.save_model_to_file(str(out / FILE))
    fused = {op: n for op, n in optimized.get_fused_operator_statistics().items() if n}
    difference = verify(source, source.load_torch(), out / FILE, FP32_ATOL)
    return {"file": FILE, "fused_operators": fused, "max_abs_logit_diff_vs_torch": difference, "tolerance": FP32_ATOL}


def load(source: ModelSource, out: Path, threads: int) -> OrtRunner:
    return OrtRunner(out / FILE, threads)
