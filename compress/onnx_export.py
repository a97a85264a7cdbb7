"""ONNX export shared by the ONNX backends, an ONNX Runtime runner, and the check that a graph computes what torch does.

Export uses the TorchScript exporter (`dynamo=False`): it traces the HF models, the mean-pool teacher and the
BOW/TextCNN/BiLSTM students alike on torch 2.11 and 2.13, and gives every input dynamic batch and sequence
axes (the dynamo exporter, measured on torch 2.13: traces the transformers and BOW/TextCNN in 6-8 s vs <1 s,
and fails on the BiLSTM's pack_padded_sequence). Transformers are traced with eager attention: ORT's BERT
fusion matches that subgraph, not the one SDPA traces to. A graph is accepted only if its logits match the
torch model's on two batches of different shapes.
"""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from transformers import PreTrainedModel

from tinykd.compress.model_source import ModelSource, to_torch
from tinykd.errors import ArtifactError

FP32_ATOL = 1e-4  # max |logit difference| an fp32 graph may show vs torch (observed: ~1e-6)


class LogitsOnly(torch.nn.Module):
    """Positional inputs in `names` order -> logits: the signature an exported graph has."""

    def __init__(self, model: torch.nn.Module, names: list[str]) -> None:
        super().__init__()
        self.model, self.names = model, names

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.model(**dict(zip(self.names, inputs))).logits  # (B, K)


def export_onnx(source: ModelSource, model: torch.nn.Module, path: Path, opset: int) -> None:
    """Trace `model` into an ONNX graph at `path`, transformers with eager attention (see `eager_attention`);
    `model` keeps its own attention implementation afterwards."""
    names = source.input_names
    example = source.example_inputs()
    axes = {name: {0: "batch", 1: "sequence"} for name in names} | {"logits": {0: "batch"}}
    with warnings.catch_warnings(), eager_attention(model):
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer warnings
        # The wrapper must be in eval mode itself: the exporter restores the wrapper's mode onto every submodule.
        torch.onnx.export(LogitsOnly(model, names).eval(), tuple(torch.from_numpy(example[n]) for n in names),
                          str(path), input_names=names, output_names=["logits"], dynamic_axes=axes,
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


def verification_batches(source: ModelSource) -> list[dict[str, np.ndarray]]:
    """Two batches of different batch size and length (dynamic axes must really be dynamic)."""
    long = "房间很大，早餐丰富，服务员态度也很热情，下次出差还会选择这家酒店。"
    texts = [["不好", long, "一般般吧"], [long * 2]]
    return [source.encode(t, t if source.pair else None, 64) for t in texts]


class OrtRunner:
    """An ONNX Runtime CPU session with a fixed intra-op thread count."""

    def __init__(self, path: Path, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.names = [i.name for i in self.session.get_inputs()]

    def __call__(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run(["logits"], {n: inputs[n] for n in self.names})[0]  # (B, K)


@torch.inference_mode()
def max_logit_difference(source: ModelSource, model: torch.nn.Module, runner) -> float:
    """Largest |logit(graph) - logit(torch)| over the verification batches."""
    worst = 0.0
    model.eval()
    for batch in verification_batches(source):
        reference = model(**to_torch(batch)).logits.numpy()
        worst = max(worst, float(np.abs(runner(batch) - reference).max()))
    return worst


def verify(source: ModelSource, model: torch.nn.Module, path: Path, atol: float) -> float:
    difference = max_logit_difference(source, model, OrtRunner(path, threads=1))
    if difference > atol:
        raise ArtifactError(f"{path}: ONNX logits differ from torch by {difference:.2e} (> {atol:.0e}) for "
                            f"{source.name}; the export is wrong, not kept")
    return difference


def onnx_size_mb(path: Path) -> float:
    return path.stat().st_size / 2**20
