"""The teacher as an ONNX Runtime graph for labelling, used only where its logits match torch's.

Labelling is the CPU cost of data distillation: the default task labels ~45k rows, and on 2 cores the fused
fp32 graph of the E5 teacher runs about twice the rows per second of torch (docs/results.md). The graph is
exported and fused (ORT's BERT fusions) at the start of a label run and checked on two batches of the rows
being labelled, the shortest and the longest; if any logit differs from torch's by more than `FP32_ATOL`
(1e-4), the unfused graph is tried, then torch labels.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from tinykd.onnx_graph import FP32_ATOL, OrtRunner, export_logits_graph, fuse_bert
from tinykd.teacher.bi_encoder import is_bi_encoder
from tinykd.teacher.encoding import length_order, pad_features

OPSET = 17
CHECK_ROWS = 16  # rows per check batch


@dataclass
class OnnxTeacher:
    """Where the graph is, and what the check found (for the label summary)."""

    graph: Path | None  # None: torch labels
    facts: dict = field(default_factory=dict)

    def forward(self, threads: int) -> Callable[[dict[str, torch.Tensor]], np.ndarray] | None:
        """A batch of padded tensors -> logits (B, K), on an ORT session with `threads` intra-op threads."""
        if self.graph is None:
            return None
        runner = OrtRunner(self.graph, threads)
        return lambda batch: runner({k: v.numpy().astype(np.int64) for k, v in batch.items()})


def onnx_teacher(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, features: list[dict],
                 directory: Path) -> OnnxTeacher:
    """Export the teacher into `directory`, fuse it, check it on `features`' shortest and longest rows."""
    started = time.perf_counter()
    directory.mkdir(parents=True, exist_ok=True)
    checks = _check_batches(tokenizer, features)
    plain, fused = directory / "teacher.onnx", directory / "teacher-fused.onnx"
    export_logits_graph(model, {k: v.numpy() for k, v in checks[0].items()}, plain, OPSET)
    candidates = [plain]
    facts: dict = {}
    encoder = getattr(model.config, "encoder", None) or model.config  # the mean-pool wrapper keeps its encoder's
    try:
        passes = 2 if is_bi_encoder(model) else 1  # a bi-encoder's graph runs its encoder once per text
        facts = fuse_bert(plain, fused, encoder.num_hidden_layers * passes, encoder.num_attention_heads,
                          encoder.hidden_size)
        candidates.insert(0, fused)
    except Exception as error:  # a model the BERT fusions do not know: the plain graph may still match
        facts = {"fusion_failed": f"{type(error).__name__}: {error}"}
    for graph in candidates:
        difference = _max_difference(model, OrtRunner(graph, threads=1), checks)
        if difference <= FP32_ATOL:
            return OnnxTeacher(graph, {"runtime": "onnx", "graph": graph.name, **facts,
                                       "max_abs_logit_diff_vs_torch": difference, "tolerance": FP32_ATOL,
                                       "export_seconds": round(time.perf_counter() - started, 1)})
        facts[f"{graph.name}_max_abs_logit_diff"] = difference
    return OnnxTeacher(None, {"runtime": "torch", "reason": f"ONNX logits differ from torch's by more than {FP32_ATOL}",
                              **facts})


def _check_batches(tokenizer: PreTrainedTokenizerBase, features: list[dict]) -> list[dict[str, torch.Tensor]]:
    """The shortest and the longest rows, as two padded batches of different shapes."""
    order = length_order(features)
    picks = [order[:CHECK_ROWS], order[-CHECK_ROWS:]] if len(order) > CHECK_ROWS else [order]
    return [pad_features(tokenizer, [features[i] for i in pick]) for pick in picks]


@torch.inference_mode()
def _max_difference(model: PreTrainedModel, runner: OrtRunner, batches: list[dict[str, torch.Tensor]]) -> float:
    worst = 0.0
    for batch in batches:
        reference = model(**batch).logits.float().numpy()  # (B, K)
        worst = max(worst, float(np.abs(runner({k: v.numpy() for k, v in batch.items()}) - reference).max()))
    return worst


def labelling_graph(runtime: str, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, features: list[dict],
                    directory: Path) -> OnnxTeacher:
    """`label.runtime`: the checked graph to label with, or torch (asked for, or on a CUDA device)."""
    if runtime == "torch":
        return OnnxTeacher(None, {"runtime": "torch", "reason": "label.runtime: torch"})
    if torch.cuda.is_available():
        return OnnxTeacher(None, {"runtime": "torch", "reason": "a CUDA device labels with torch"})
    return onnx_teacher(model, tokenizer, features, directory)
