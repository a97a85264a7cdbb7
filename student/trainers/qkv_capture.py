"""Capture one encoder layer's Q, K, V projections with forward hooks, for the relation loss.

Hooks read the outputs of `encoder.layer[i].attention.self.{query,key,value}` (BERT, XLM-R, the imported
E5, our tiny students) during an ordinary forward, so no model is patched or re-implemented and the
attention kernel (eager or SDPA) does not matter. Each forward through the layer is kept apart: a bi-encoder's
forward runs its encoder once per side of a pair, so it leaves two captures.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

PROJECTIONS = ("query", "key", "value")


def encoder_layers(model: nn.Module) -> nn.ModuleList:
    """The transformer blocks of a BERT-style model (task head or not)."""
    base = getattr(model, "base_model", model)
    layers = getattr(getattr(base, "encoder", None), "layer", None)
    if not isinstance(layers, nn.ModuleList):
        raise ValueError(f"{type(model).__name__} has no BERT-style encoder.layer list to take Q/K/V from")
    return layers


@contextmanager
def capture_qkv(model: nn.Module, layer: int) -> Iterator[list[dict[str, torch.Tensor]]]:
    """Within the block, every forward through `layer` of `model` (negative counts from the end, -1 = last) appends
    {"query"|"key"|"value": (B, L, H)} to the yielded list, in call order."""
    layers = encoder_layers(model)
    if not -len(layers) <= layer < len(layers):
        raise ValueError(f"layer {layer} is out of range: {type(model).__name__} has {len(layers)} layers")
    attention = getattr(getattr(layers[layer], "attention", None), "self", None)
    if attention is None or not all(isinstance(getattr(attention, p, None), nn.Linear) for p in PROJECTIONS):
        raise ValueError(f"layer {layer} of {type(model).__name__} has no attention.self.query/key/value projections")
    captured: list[dict[str, torch.Tensor]] = []

    def keep(name: str):
        def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            if not captured or name in captured[-1]:  # the first projection of a new forward through the layer
                captured.append({})
            captured[-1][name] = output  # (B, L, H)
        return hook

    handles = [getattr(attention, p).register_forward_hook(keep(p)) for p in PROJECTIONS]
    try:
        yield captured
    finally:
        for handle in handles:
            handle.remove()
