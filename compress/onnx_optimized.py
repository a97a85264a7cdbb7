"""ONNX Runtime with onnxruntime's transformer optimizer: attention, embedding + LayerNorm, GELU and bias fusions.

Starts from the onnx-fp32 export (traced with eager attention, the pattern the BERT fusion matches); applies
to the `hf` family only (the fusions match BERT-style encoders). The fused operator counts are recorded,
since a fusion that silently does not match is the usual reason this backend is no faster than onnx-fp32:
`attention_fused` says how many of the encoder's layers became one Attention op.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from tinykd.compress.backend import BuildContext
from tinykd.compress.model_source import ModelSource, register_model_classes
from tinykd.compress.onnx_export import verify
from tinykd.compress.onnx_fp32 import FILE
from tinykd.compress.onnx_fp32 import unavailable as onnx_unavailable
from tinykd.onnx_graph import FP32_ATOL, OrtRunner, fuse_bert

if TYPE_CHECKING:
    from transformers import PretrainedConfig


def unavailable() -> str | None:
    return onnx_unavailable()


def encoder_config(source: ModelSource) -> PretrainedConfig:
    """The BERT-style encoder's config (inside the mean-pool or bi-encoder wrapper)."""
    from transformers import AutoConfig

    register_model_classes()
    config = AutoConfig.from_pretrained(source.directory)
    return getattr(config, "encoder", None) or config


def encoder_shape(source: ModelSource) -> tuple[int, int, int]:
    """(layers, heads, hidden) of the encoder."""
    encoder = encoder_config(source)
    return encoder.num_hidden_layers, encoder.num_attention_heads, encoder.hidden_size


def optimize(source: ModelSource, graph: Path, out: Path) -> dict:
    """Fuse the fp32 graph at `graph` into `out`; return the fused operator counts."""
    return fuse_bert(graph, out, *encoder_shape(source))


def build(source: ModelSource, out: Path, context: BuildContext) -> dict:
    facts = optimize(source, context.built("onnx-fp32") / FILE, out / FILE)
    difference = verify(source, source.load_torch(), out / FILE, FP32_ATOL)
    return {"file": FILE, **facts, "max_abs_logit_diff_vs_torch": difference, "tolerance": FP32_ATOL}


def load(source: ModelSource, out: Path, threads: int, spin_wait: bool = True) -> OrtRunner:
    return OrtRunner(out / FILE, threads, spin_wait)
