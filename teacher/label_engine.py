"""What a label engine is (it turns chunks of rows into the teacher's logits), and the default one, in this process.

The label stage (`teacher/labeling.py`) decides which chunks are missing, writes each one atomically as it comes
back and joins them per split; an engine only computes logits. So every engine resumes a killed run the same way,
and a run killed on one engine may finish on the other.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generator, Iterable, Protocol

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm
from transformers import AutoModelForSequenceClassification, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from tinykd.artifacts import RunPaths
from tinykd.config import Config
from tinykd.teacher.bi_encoder import is_bi_encoder
from tinykd.teacher.encoding import batched_logits, encode_rows, predict_logits
from tinykd.teacher.onnx_labeler import OnnxTeacher, labelling_graph


@dataclass(frozen=True)
class Chunk:
    """One resumable unit of a split: `label.chunk_rows` consecutive rows and the part file for their logits."""

    split: str
    number: int
    rows: pd.DataFrame
    part: Path


@dataclass
class LabelWork:
    """What an engine measured, for the rates in `label/summary.json`.

    `seconds` is the time the labelled rows took (local: tokenizing + forward passes; ray: the Ray job's wall time,
    actor start-up included); `core_seconds` is compute time × torch threads summed over workers (start-up and
    idle time excluded), the denominator of the per-core rate that projections scale from.
    """

    seconds: float = 0.0
    core_seconds: float = 0.0
    workers: int = 1
    threads: int = 1
    runtime: dict = field(default_factory=dict)  # what `label.runtime` decided (tinykd.teacher.onnx_labeler)

    @property
    def cores(self) -> int:
        return self.workers * self.threads


class LabelEngine(Protocol):
    """Built with (config, paths); `label` yields each chunk with its logits (n, K) float32 in the chunk's row order,
    in any chunk order, as soon as they are known, and starts nothing when `chunks` is empty."""

    work: LabelWork

    def label(self, chunks: Iterable[Chunk], progress: tqdm) -> Generator[tuple[Chunk, np.ndarray], None, None]: ...


def load_teacher(model_dir: Path | str) -> tuple[PreTrainedTokenizerBase, PreTrainedModel]:
    """The saved teacher's tokenizer and model, in eval mode without gradients."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    model.eval().requires_grad_(False)
    return tokenizer, model


class TeacherLogits:
    """The teacher's logits for rows of a chunk: on its checked ONNX graph when there is one, else on torch.

    Both engines label through this, so a chunk gets the same batches on either (length-sorted, `batch_size`).
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, model: PreTrainedModel, graph: Path | None,
                 threads: int, max_length: int, batch_size: int) -> None:
        self.tokenizer, self.model, self.max_length, self.batch_size = tokenizer, model, max_length, batch_size
        self.forward = OnnxTeacher(graph).forward(threads) if graph is not None else None

    def __call__(self, rows: pd.DataFrame, progress: tqdm | None = None) -> np.ndarray:
        features = encode_rows(self.tokenizer, rows, self.max_length, sides=is_bi_encoder(self.model))
        if self.forward is None:
            return predict_logits(self.model, self.tokenizer, features, self.batch_size, progress=progress)  # (n, K)
        return batched_logits(self.forward, self.tokenizer, features, self.batch_size, self.model.config.num_labels,
                              progress=progress)  # (n, K)


def start_runtime(config: Config, paths: RunPaths, tokenizer: PreTrainedTokenizerBase, model: PreTrainedModel,
                  first: Chunk) -> OnnxTeacher:
    """Decide `label.runtime` once per run, checking the graph on the first missing chunk's rows."""
    features = encode_rows(tokenizer, first.rows, config.task.max_length, sides=is_bi_encoder(model))
    return labelling_graph(config.label.runtime, model, tokenizer, features, paths.label_dir / "onnx")


class LocalEngine:
    """The teacher in this process, `label.threads` torch threads (on CUDA when present), one chunk after another."""

    def __init__(self, config: Config, paths: RunPaths) -> None:
        self.config, self.paths = config, paths
        self.spec, self.max_length, self.model_dir = config.label, config.task.max_length, paths.teacher_model
        self.work = LabelWork(threads=self.spec.threads or torch.get_num_threads())

    def label(self, chunks: Iterable[Chunk], progress: tqdm) -> Generator[tuple[Chunk, np.ndarray], None, None]:
        teacher = None
        for chunk in chunks:
            if teacher is None:  # loaded at the first missing chunk: a run whose chunks all exist loads nothing
                teacher = self._start(chunk)
            started = time.perf_counter()
            logits = teacher(chunk.rows, progress)  # (n, K)
            seconds = time.perf_counter() - started
            self.work.seconds += seconds
            self.work.core_seconds += seconds * self.work.threads
            yield chunk, logits

    def _start(self, first: Chunk) -> TeacherLogits:
        if self.spec.threads:
            torch.set_num_threads(self.spec.threads)
        tokenizer, model = load_teacher(self.model_dir)
        if torch.cuda.is_available():  # a lent GPU labels in seconds what 2 CPU cores take minutes for
            model.to("cuda")
        runtime = start_runtime(self.config, self.paths, tokenizer, model, first)
        self.work.runtime = runtime.facts
        return TeacherLogits(tokenizer, model, runtime.graph, self.work.threads, self.max_length, self.spec.batch_size)
