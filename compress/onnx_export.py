"""ONNX export shared by the ONNX backends, an ONNX Runtime runner, and the check that a graph computes what torch does.

Export uses the TorchScript exporter (`dynamo=False`): it traces the HF models, the mean-pool teacher and the
BOW/TextCNN/BiLSTM students alike on torch 2.11 and 2.13, and gives every input dynamic batch and sequence
axes. A graph is accepted only if its logits match the torch model's on two batches of different shapes.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from compress.model_source import ModelSource, to_torch
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
    names = source.input_names
    example = source.example_inputs()
    axes = {name: {0: "batch", 1: "sequence"} for name in names} | {"logits": {0: "batch"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer warnings
        # The wrapper must be in eval mode itself: the exporter restores the wrapper's mode onto every submodule.
        torch.onnx.export(LogitsOnly(model, names).eval(), tuple(torch.from_numpy(example[n]) for n in names),
                          str(path), input_names=names, output_names=["logits"], dynamic_axes=axes,
                          opset_version=opset, dynamo=False)


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
