"""ONNX export of a compress model source, and the check that a graph computes what torch does.

The export itself, the fusions and the runner are `tinykd.onnx_graph` (the label stage uses them too). A graph
is accepted only if its logits match the torch model's on two batches of different shapes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from tinykd.compress.model_source import ModelSource, to_torch
from tinykd.errors import ArtifactError
from tinykd.onnx_graph import OrtRunner, export_logits_graph


def export_onnx(source: ModelSource, model: torch.nn.Module, path: Path, opset: int) -> None:
    """Trace `model` into an ONNX graph at `path` with the source's input names (see `export_logits_graph`)."""
    export_logits_graph(model, source.example_inputs(), path, opset)


def verification_batches(source: ModelSource) -> list[dict[str, np.ndarray]]:
    """Two batches of different batch size and length (dynamic axes must really be dynamic)."""
    long = "房间很大，早餐丰富，服务员态度也很热情，下次出差还会选择这家酒店。"
    texts = [["不好", long, "一般般吧"], [long * 2]]
    # The second texts are shorter, so a siamese graph meets two different lengths in one batch.
    return [source.encode(t, [text[:6] for text in t] if source.pair else None, 64) for t in texts]


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
