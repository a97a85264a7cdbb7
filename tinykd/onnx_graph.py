"""A sequence classifier as an ONNX graph on ONNX Runtime: export, BERT fusions, a CPU runner.

Shared by compress's ONNX backends and the label stage (which labels on the fused fp32 graph where its logits
match torch's: on the E5 teacher ONNX Runtime runs about twice as many rows per second on 2 cores).

Export uses the TorchScript exporter (`dynamo=False`): it traces the HF models, the mean-pool teacher and the
BOW/TextCNN/BiLSTM students alike on torch 2.11 and 2.13, and gives every input dynamic batch and sequence
axes (the dynamo exporter, measured on torch 2.13: traces the transformers and BOW/TextCNN in 6-8 s vs <1 s,
and fails on the BiLSTM's pack_padded_sequence). Transformers are traced with eager attention: ORT's BERT
fusion matches that subgraph, not the one SDPA traces to.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from transformers import PreTrainedModel

FP32_ATOL = 1e-4  # max |logit difference| an fp32 graph may show vs torch (observed: ~1e-6)


class LogitsOnly(torch.nn.Module):
    """Positional inputs in `names` order -> logits: the signature an exported graph has."""

    def __init__(self, model: torch.nn.Module, names: list[str]) -> None:
        super().__init__()
        self.model, self.names = model, names

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.model(**dict(zip(self.names, inputs))).logits  # (B, K)


def export_logits_graph(model: torch.nn.Module, example: dict[str, np.ndarray], path: Path, opset: int) -> None:
    """Trace `model` into an ONNX graph at `path` with inputs named and ordered as `example`'s keys, dynamic batch
    and sequence axes, transformers with eager attention; `model` keeps its own attention implementation."""
    export_graph(LogitsOnly(model, list(example)), model, example, path, opset)


def export_graph(module: torch.nn.Module, model: torch.nn.Module, example: dict[str, np.ndarray], path: Path,
                 opset: int, output: str = "logits") -> None:
    """Trace `module` (positional inputs in `example`'s key order -> one tensor named `output`), a wrapper around
    `model`, with dynamic batch and sequence axes (a 2-D float input: batch only) and eager attention."""
    names = list(example)
    # A siamese model's second text (`*_b`) has its own length: one shared axis name would tell ORT both are equal.
    axes = {name: {0: "batch", 1: "sequence_b" if name.endswith("_b") else "sequence"}
            if example[name].dtype == np.int64 else {0: "batch"} for name in names}
    axes[output] = {0: "batch"}
    with warnings.catch_warnings(), eager_attention(model):
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer warnings
        # The wrapper must be in eval mode itself: the exporter restores the wrapper's mode onto every submodule.
        torch.onnx.export(module.eval(), tuple(torch.from_numpy(example[n]) for n in names),
                          str(path), input_names=names, output_names=[output], dynamic_axes=axes,
                          opset_version=opset, dynamo=False)


@contextlib.contextmanager
def eager_attention(model: torch.nn.Module) -> Iterator[None]:
    """Trace transformers with eager attention (same math as SDPA), then restore the model's own choice.

    ORT's transformer optimizer fuses the eager pattern (MatMul, scale, mask Add, Softmax, MatMul) into one
    Attention op; the SDPA trace leaves it unfused (tiny BERT: Attention 2 of 2 layers vs 0; the 4-layer
    student: 4 of 4 vs 0), and unfused attention is most of what onnx-optimized would gain.
    """
    encoders = {m: m.config._attn_implementation for m in model.modules()
                if isinstance(m, PreTrainedModel) and hasattr(m.config, "_attn_implementation")}
    if not any(impl not in (None, "eager") for impl in encoders.values()):
        yield  # no attention (BOW / TextCNN / BiLSTM) or already eager
        return
    model.set_attn_implementation("eager")
    try:
        yield
    finally:
        for module, impl in encoders.items():
            module.config._attn_implementation = impl


def fuse_bert(graph: Path, out: Path, layers: int, heads: int, hidden: int) -> dict:
    """ORT's BERT fusions (attention, embedding + LayerNorm, GELU, bias) of `graph` into `out`, with the fused
    operator counts: a fusion that silently does not match is why a fused graph is no faster."""
    from onnxruntime.transformers.optimizer import optimize_model

    logging.getLogger("onnxruntime.transformers").setLevel(logging.ERROR)  # per-fusion INFO lines
    optimized = optimize_model(str(graph), model_type="bert", num_heads=heads, hidden_size=hidden, opt_level=1)
    optimized.save_model_to_file(str(out))
    fused = {op: n for op, n in optimized.get_fused_operator_statistics().items() if n}
    return {"fused_operators": fused, "attention_fused": f"{fused.get('Attention', 0)}/{layers} layers"}


class OrtRunner:
    """An ONNX Runtime CPU session with a fixed intra-op thread count. With `spin_wait` off its intra-op threads sleep
    between calls instead of spinning: measured on 2 cores, a BOW served over HTTP behind HAProxy held p99 <= 20 ms
    at 75 qps with sleeping threads and at none of 50, 25 or 12.5 qps with spinning ones, which took the cores the
    front end needed."""

    def __init__(self, path: Path, threads: int, spin_wait: bool = True) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if not spin_wait:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.names = [i.name for i in self.session.get_inputs()]

        self.output = self.session.get_outputs()[0].name  # logits; a bi-encoder's parts: embedding, logits

    def __call__(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run([self.output], {n: inputs[n] for n in self.names})[0]  # (B, K) / (B, D)
