"""One model × backend as a function from raw texts to labels and probabilities: what a replica and the in-process
load system both call, so the two serve exactly the same computation.

The model is the compress stage's built artifact (`compressed/<model>/<backend>/`), loaded through the backend
table like the bench loads it; tokenization is the model's own (`ModelSource.encode`). `NoModel` answers without
tokenizing or running anything: `load.ceiling` serves it to measure what the serving path itself sustains.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tinykd.artifacts import RunPaths
from tinykd.compress.backend import Runner, load_runner
from tinykd.compress.model_source import ModelSource
from tinykd.config import ServeConfig

NO_MODEL = "no-model"  # the model name (and "none" the backend) of the ceiling runs in load results


@dataclass(frozen=True)
class ServedModel:
    """What a replica (or the in-process system) loads: a built model × backend of one run, or no model."""

    run_dir: Path
    model: str
    backend: str
    pair: bool
    seq_len: int
    no_model: bool = False
    labels: tuple[str, ...] = ()  # NoModel's answer labels (a real model has its own)


@dataclass(frozen=True)
class Prediction:
    label: str
    probabilities: dict[str, float]

    def record(self) -> dict:
        return {"label": self.label, "probabilities": self.probabilities}


class Predictor:
    """Texts in, one `Prediction` per text out; `threads` intra-op threads (torch and ONNX Runtime), spinning between
    calls or not (`spin_wait`: see `serve.spin_wait`)."""

    def __init__(self, served: ServedModel, threads: int, spin_wait: bool = True):
        paths = RunPaths(Path(served.run_dir))
        torch.set_num_threads(threads)
        self.model, self.backend, self.pair, self.seq_len = served.model, served.backend, served.pair, served.seq_len
        self.source = ModelSource.of(served.model, paths, served.pair)
        self.runner: Runner = load_runner(served.backend, self.source, paths.compressed(served.model, served.backend),
                                          threads, spin_wait)
        self.labels = self.source.label_names

    def __call__(self, items: list[tuple[str, str | None]]) -> list[Prediction]:
        texts_a = [a for a, _ in items]
        texts_b = [b for _, b in items] if self.pair else None
        logits = np.asarray(self.runner(self.source.encode(texts_a, texts_b, self.seq_len)), dtype=np.float64)
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))  # (B, K)
        probabilities = shifted / shifted.sum(axis=1, keepdims=True)
        return [Prediction(self.labels[int(row.argmax())], {name: round(float(p), 6) for name, p in zip(self.labels, row)})
                for row in probabilities]


class NoModel:
    """The first label at uniform probabilities for every text, at once: the serving path's own cost, nothing else."""

    def __init__(self, served: ServedModel):
        self.model, self.backend, self.pair, self.labels = served.model, served.backend, served.pair, list(served.labels)
        self._answer = Prediction(self.labels[0], {name: round(1 / len(self.labels), 6) for name in self.labels})

    def __call__(self, items: list[tuple[str, str | None]]) -> list[Prediction]:
        return [self._answer] * len(items)


def load_predictor(served: ServedModel, spec: ServeConfig) -> Predictor | NoModel:
    """The model a server (or the in-process system) answers with, under the `serve` section's threads and waiting."""
    return NoModel(served) if served.no_model else Predictor(served, spec.threads, spec.spin_wait)
