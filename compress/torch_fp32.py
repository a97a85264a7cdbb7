"""torch fp32 eager: the reference every other backend is compared with. Builds nothing but a pointer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from tinykd.compress.backend import BuildContext
from tinykd.compress.model_source import ModelSource, to_torch
from tinykd.compress.siamese_parts import TorchEmbedder


def unavailable() -> str | None:
    return None


def build(source: ModelSource, out: Path, context: BuildContext) -> dict:
    return {"weights": str(source.directory)}  # the fp32 save_pretrained directory itself


class TorchRunner:
    def __init__(self, model: torch.nn.Module, threads: int) -> None:
        self.model, self.threads = model, threads

    @torch.inference_mode()
    def __call__(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        torch.set_num_threads(self.threads)
        return self.model(**to_torch(inputs)).logits.float().numpy()  # (B, K)


def load(source: ModelSource, out: Path, threads: int, spin_wait: bool = True) -> TorchRunner:
    return TorchRunner(source.load_torch(), threads)


def load_embedder(source: ModelSource, out: Path, threads: int, spin_wait: bool = True) -> TorchEmbedder:
    return TorchEmbedder(source.load_torch(), threads)
