"""The two parts of a siamese pair model (bi-encoder, siamese BOW/TextCNN/BiLSTM), for serving against cached candidates.

A matcher embeds its candidate set once and keeps the vectors; a query then costs one `embed` of the query and one
`compare` of its vector with every cached one. A backend that can serve that shape offers
`load_embedder(source, out, threads, spin_wait) -> Embedder` beside `load`: torch fp32 and int8 run the model's
own `embed` / `compare`; ONNX fp32 exports each part as its own graph (`embed.onnx`, `compare.onnx`), checked
against torch like the whole model; ONNX int8 dynamic quantizes the embed graph (fused first for transformers)
and keeps the small compare head in fp32.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from tinykd.compress.model_source import ModelSource, to_torch
from tinykd.compress.onnx_export import verification_batches
from tinykd.errors import ArtifactError
from tinykd.onnx_graph import FP32_ATOL, OrtRunner, export_graph

EMBED_FILE, COMPARE_FILE = "embed.onnx", "compare.onnx"
PART_FILES = (EMBED_FILE, COMPARE_FILE)  # the same weights again in another shape: not counted in a build's size
SIDE = ("input_ids", "attention_mask")  # one text's inputs


class Embedder(Protocol):
    def embed(self, inputs: dict[str, np.ndarray]) -> np.ndarray:  # one side's (B, L) inputs -> (B, D) float32
        ...

    def compare(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:  # (1, D) or (B, D) with (B, D) -> (B, K) logits
        ...


class _EmbedPart(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model.embed(input_ids, attention_mask)  # (B, D)


class _ComparePart(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return self.model.compare(u, v)  # (B, D), (B, D) -> (B, K)


class TorchEmbedder:
    def __init__(self, model: torch.nn.Module, threads: int) -> None:
        self.model, self.threads = model.eval(), threads

    @torch.inference_mode()
    def embed(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        torch.set_num_threads(self.threads)
        return self.model.embed(*(torch.from_numpy(inputs[n]) for n in SIDE)).float().numpy()

    @torch.inference_mode()
    def compare(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        torch.set_num_threads(self.threads)
        return self.model.compare(torch.from_numpy(u), torch.from_numpy(v)).float().numpy()


class OrtEmbedder:
    def __init__(self, directory: Path, threads: int, spin_wait: bool = True) -> None:
        self.embedder = OrtRunner(directory / EMBED_FILE, threads, spin_wait)
        self.comparer = OrtRunner(directory / COMPARE_FILE, threads, spin_wait)

    def embed(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        return self.embedder({n: inputs[n] for n in SIDE})

    def compare(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        # The graph takes equal batches: the query's one row is repeated (C x D floats, no model work).
        return self.comparer({"u": np.ascontiguousarray(np.broadcast_to(u, v.shape)), "v": v})


def load_ort_embedder(source: ModelSource, out: Path, threads: int, spin_wait: bool = True) -> OrtEmbedder:
    """`load_embedder` of the ONNX backends that write the parts (onnx-fp32, onnx-int8-dynamic)."""
    if not (out / EMBED_FILE).is_file():
        raise ArtifactError(f"{out}: no {EMBED_FILE}; re-run the 'compress' stage (older builds lack the siamese parts)")
    return OrtEmbedder(out, threads, spin_wait)


def export_parts(source: ModelSource, model: torch.nn.Module, out: Path, opset: int) -> dict:
    """Write `embed.onnx` and `compare.onnx` for a siamese source; refuse them if either differs from torch."""
    example = source.example_inputs()
    side = {n: example[n] for n in SIDE}
    with torch.inference_mode():
        vectors = model.embed(*(torch.from_numpy(side[n]) for n in SIDE)).numpy()
    export_graph(_EmbedPart(model), model, side, out / EMBED_FILE, opset, output="embedding")
    export_graph(_ComparePart(model), model, {"u": vectors, "v": vectors[::-1].copy()}, out / COMPARE_FILE, opset)
    difference = parts_difference(source, model, OrtEmbedder(out, threads=1))
    if difference > FP32_ATOL:
        raise ArtifactError(f"{out}: the embed / compare graphs differ from torch by {difference:.2e} "
                            f"(> {FP32_ATOL:.0e}) for {source.name}; not kept")
    return {"parts": [EMBED_FILE, COMPARE_FILE], "parts_max_abs_diff_vs_torch": difference}


def parts_difference(source: ModelSource, model: torch.nn.Module, embedder: Embedder) -> float:
    """Largest |difference| from torch of the candidate shape: each query against every candidate of a batch."""
    worst = 0.0
    reference = TorchEmbedder(model, threads=1)
    for batch in verification_batches(source):
        candidates = {n: batch[f"{n}_b"] for n in SIDE}
        got_v, want_v = embedder.embed(candidates), reference.embed(candidates)
        worst = max(worst, float(np.abs(got_v - want_v).max()))
        for row in range(len(batch["input_ids"])):
            query = {n: batch[n][row : row + 1] for n in SIDE}
            got = embedder.compare(embedder.embed(query), got_v)
            want = reference.compare(reference.embed(query), want_v)
            worst = max(worst, float(np.abs(got - want).max()))
    with torch.inference_mode():  # and the cached shape scores a pair as the whole model does
        pairs = model(**to_torch(batch)).logits.numpy()
    cached = reference.compare(reference.embed({n: batch[n] for n in SIDE}), want_v)
    return max(worst, float(np.abs(cached - pairs).max()))
