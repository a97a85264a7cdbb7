"""Training loop for the small students (BOW, TextCNN, BiLSTM): gold rows + teacher-labelled rows.

Loss = Σ w_name · term_name over the configured terms (`hard`, `soft`; computed by
`tinykd.student.losses.loss_terms`), each logged by name per epoch.
Rows with teacher logits get the soft term; gold rows (and, with `augmented_target: hard`, augmented rows
via the teacher's argmax) get the hard term. Early stopping keeps the epoch with the best dev accuracy.
Batches are grouped by length (HF's `group_by_length` sampler): with texts of 1 to 256 words, random
batches would be mostly padding, which TextCNN computes and which sets the BiLSTM's step count.
These students train in seconds to minutes on CPU, so a killed run simply restarts (the artifact is
written atomically at the end).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm
from transformers.trainer_pt_utils import get_length_grouped_indices

from tinykd.config import SmallStudentSpec
from tinykd.student.losses import LossBatch, loss_terms
from tinykd.student.models.registry import build_small_student
from tinykd.student.models.small_student import SmallStudent, SmallStudentConfig
from tinykd.student.models.vocabulary import StudentTokenizer, split_text


class TokenCache:
    """Token lists per (level, segmenter, text), shared by every student of a run: segmentation is the slow part."""

    def __init__(self) -> None:
        self._tokens: dict[tuple[str, str, str], list[str | None]] = {}

    def split(self, level: str, texts: list[str], segmenter: str) -> list[list[str | None]]:
        out = []
        for text in texts:
            key = (level, segmenter if level == "word" else "", text)
            if key not in self._tokens:
                self._tokens[key] = split_text(text, level, segmenter)
            out.append(self._tokens[key])
        return out

    def ids(self, tokenizer: StudentTokenizer, texts: list[str]) -> list[list[int]]:
        return [tokenizer.ids_of(tokens) for tokens in self.split(tokenizer.level, texts, tokenizer.segmenter)]


@dataclass
class Encoded:
    """A table of rows as student inputs: ids per text column, hard targets, teacher logits (or NaN)."""

    ids: list[list[list[int]]]  # per text column: per row token ids
    targets: torch.Tensor  # (N,) class id or NO_TARGET
    teacher_logits: torch.Tensor  # (N, K); rows without teacher logits are NaN

    def __len__(self) -> int:
        return len(self.targets)

    def lengths(self) -> list[int]:
        """Tokens per row (pairs: the longer text), for length-grouped batches."""
        return [max(len(column[i]) for column in self.ids) for i in range(len(self))]


def encode_table(rows: pd.DataFrame, columns: list[str], tokenizer: StudentTokenizer, cache: TokenCache,
                 targets: np.ndarray, num_labels: int) -> Encoded:
    ids = [cache.ids(tokenizer, rows[c].tolist()) for c in columns]
    if "logits" in rows:
        logits = torch.tensor(np.stack(rows["logits"].to_numpy()), dtype=torch.float32)
    else:
        logits = torch.full((len(rows), num_labels), float("nan"))
    return Encoded(ids, torch.tensor(targets, dtype=torch.long), logits)


def batch_inputs(tokenizer: StudentTokenizer, encoded: Encoded, index: list[int]) -> dict[str, torch.Tensor]:
    ids_a, mask_a = tokenizer.pad([encoded.ids[0][i] for i in index])
    inputs = {"input_ids": ids_a, "attention_mask": mask_a}
    if len(encoded.ids) == 2:
        inputs["input_ids_b"], inputs["attention_mask_b"] = tokenizer.pad([encoded.ids[1][i] for i in index])
    return inputs


@torch.inference_mode()
def predict(model: SmallStudent, tokenizer: StudentTokenizer, encoded: Encoded, batch_size: int = 256) -> np.ndarray:
    """Logits (N, K) in row order; rows are batched by length, then put back."""
    model.eval()
    order = np.argsort(encoded.lengths(), kind="stable")
    out = [model(**batch_inputs(tokenizer, encoded, order[s : s + batch_size].tolist())).logits
           for s in range(0, len(encoded), batch_size)]
    logits = np.empty((len(encoded), model.config.num_labels), dtype=np.float32)
    logits[order] = torch.cat(out).numpy() if out else logits[:0]
    return logits


@dataclass
class TrainOutcome:
    model: SmallStudent
    log: list[dict]
    best_epoch: int
    seconds: float


def train_small_student(spec: SmallStudentSpec, tokenizer: StudentTokenizer, train: Encoded, dev: Encoded,
                        dev_labels: np.ndarray, label_names: list[str], pair: bool,
                        on_epoch: Callable[[float], None] | None = None) -> TrainOutcome:
    """`label_names`: the task's classes in id order (the head's width; saved as `id2label`, so the model reloads
    with its classes named). `on_epoch(dev_accuracy)` runs after each epoch's dev evaluation (the search's pruner
    hook; it may raise to stop training)."""
    torch.manual_seed(spec.seed)
    model = build_small_student(SmallStudentConfig(
        kind=spec.kind, vocab_size=len(tokenizer), embedding_dim=spec.embedding_dim, hidden_size=spec.hidden_size,
        pair=pair, kernel_sizes=tuple(spec.kernel_sizes), num_filters=spec.num_filters, pooling=spec.pooling,
        dropout=spec.dropout, id2label=dict(enumerate(label_names)),
        label2id={name: i for i, name in enumerate(label_names)},
    ))
    optimizer = torch.optim.AdamW(model.parameters(), lr=spec.learning_rate, weight_decay=spec.weight_decay)
    weights = spec.losses.model_dump()
    lengths = train.lengths()
    generator = torch.Generator().manual_seed(spec.seed)

    best_accuracy, best_state, best_epoch, waited, log = -1.0, None, 0, 0, []
    started = time.perf_counter()
    epochs = tqdm(range(1, spec.epochs + 1), desc=f"distill {spec.name}", unit="epoch")
    for epoch in epochs:
        model.train()
        order = get_length_grouped_indices(lengths, spec.batch_size, generator=generator)
        sums = {name: 0.0 for name in weights} | {"loss": 0.0}
        batches = 0
        for start in range(0, len(order), spec.batch_size):
            index = order[start : start + spec.batch_size]
            logits = model(**batch_inputs(tokenizer, train, index)).logits  # (B, K)
            terms = loss_terms(weights, LossBatch(logits, train.targets[index], train.teacher_logits[index],
                                                  spec.temperature))
            loss = sum(weights[name] * term for name, term in terms.items())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            for name, term in terms.items():
                sums[name] += term.item()
            sums["loss"] += loss.item()
            batches += 1
        accuracy = float((predict(model, tokenizer, dev).argmax(1) == dev_labels).mean())
        entry = {"epoch": epoch, **{k: v / batches for k, v in sums.items()}, "dev_accuracy": accuracy,
                 "seconds": round(time.perf_counter() - started, 1)}
        log.append(entry)
        epochs.set_postfix(loss=f"{entry['loss']:.3f}", dev=f"{accuracy:.4f}")
        if on_epoch is not None:
            on_epoch(accuracy)
        if accuracy > best_accuracy:
            best_accuracy, best_epoch, waited = accuracy, epoch, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            waited += 1
            if waited >= spec.patience:
                break
    model.load_state_dict(best_state)
    return TrainOutcome(model.eval(), log, best_epoch, time.perf_counter() - started)
