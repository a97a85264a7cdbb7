"""torch dynamic int8: `nn.Linear` (and the BiLSTM's `nn.LSTM`) weights in int8, activations quantized per call.

The quantized state dict is saved (its size on disk is the real int8 size); loading quantizes a fresh
copy of the fp32 architecture the same way and loads those weights into it.
"""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path

import torch
from torch import nn

from tinykd.compress.backend import BuildContext
from tinykd.compress.model_source import ModelSource
from tinykd.compress.siamese_parts import TorchEmbedder
from tinykd.compress.torch_fp32 import TorchRunner

FILE = "model_int8.pt"
QUANTIZED = ("Linear", "LSTM")  # module types quantize_dynamic swaps in


def unavailable() -> str | None:
    return None if "qnnpack" in torch.backends.quantized.supported_engines or \
        "fbgemm" in torch.backends.quantized.supported_engines else "this torch build has no quantized CPU engine"


def quantize(model: nn.Module) -> nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notice
        return torch.ao.quantization.quantize_dynamic(model, {nn.Linear, nn.LSTM}, dtype=torch.qint8)


def build(source: ModelSource, out: Path, context: BuildContext) -> dict:
    quantized = quantize(source.load_torch())
    torch.save(quantized.state_dict(), out / FILE)
    layers = Counter(type(m).__name__ for m in quantized.modules()
                     if type(m).__module__.startswith("torch.ao.nn.quantized.dynamic")
                     and type(m).__name__ in QUANTIZED)
    return {"file": FILE, "quantized_modules": dict(layers)}  # e.g. {"Linear": 2, "LSTM": 1}


def load(source: ModelSource, out: Path, threads: int, spin_wait: bool = True) -> TorchRunner:
    return TorchRunner(_quantized(source, out), threads)


def load_embedder(source: ModelSource, out: Path, threads: int, spin_wait: bool = True) -> TorchEmbedder:
    return TorchEmbedder(_quantized(source, out), threads)


def _quantized(source: ModelSource, out: Path) -> nn.Module:
    model = quantize(source.load_torch())
    with warnings.catch_warnings():
        # torch's own unpickling of packed int8 weights goes through TypedStorage and warns of its deprecation
        warnings.filterwarnings("ignore", message="TypedStorage is deprecated", category=UserWarning)
        state = torch.load(out / FILE, weights_only=False)
    model.load_state_dict(state)
    return model.eval()
