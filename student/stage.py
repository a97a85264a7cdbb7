"""Stage `distill`: train every student in `students:` and judge it on dev and test.

Tiny transformer students go through their schedule in `tinykd.student.trainers.transformer_distill`; this module
trains the small ones.

Small students (BOW, TextCNN, BiLSTM) learn from the gold train rows and, with `data` augmented, pool or
distilled, from the rows the teacher labelled (ERNIE's data distillation): those of the augmentation ops, of the
unlabeled pool, or all of them (`tinykd.config.training_data`). Writes, per student,
`students/<name>/model/` (model + its tokenizer), `metrics.json` and `train_log.csv`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from tinykd.artifacts import (
    RunPaths,
    atomic_path,
    fingerprint,
    read_json,
    recorded_fingerprint,
    require,
    write_json,
)
from tinykd.config import Config, SmallStudentSpec, TransformerStudentSpec
from tinykd.environment import environment
from tinykd.metrics import classification_metrics
from tinykd.student.losses.hard import NO_TARGET
from tinykd.student.models.vocabulary import StudentTokenizer
from tinykd.student.preflight import check_students
from tinykd.student.trainers.small_trainer import Encoded, TokenCache, encode_table, predict, train_small_student
from tinykd.task_rows import text_columns


@dataclass
class DistillResult:
    accuracy: dict[str, float] = field(default_factory=dict)  # student name -> test accuracy
    skipped: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"{name} {acc:.2%}" for name, acc in self.accuracy.items()]
        fresh = f" ({len(self.skipped)} up to date)" if self.skipped else ""
        return "distill: test accuracy " + (", ".join(parts) if parts else "-") + fresh


def run(config: Config, paths: RunPaths) -> DistillResult:
    check_students(config, paths)  # what only the saved teacher can tell, before any training
    result, cache = DistillResult(), TokenCache()
    for spec in config.students:
        if isinstance(spec, TransformerStudentSpec):
            from tinykd.student.trainers.transformer_distill import (
                distill_transformer,  # loads the teacher's stack only when needed
            )

            metrics = distill_transformer(config, spec, paths)
        else:
            metrics = distill_one(config, spec, paths, cache)
        result.accuracy[spec.name] = metrics["test"]["accuracy"]
        if metrics.get("skipped"):
            result.skipped.append(spec.name)
    return result


def _inputs_stamp(spec: SmallStudentSpec, paths: RunPaths) -> list:
    stamps = [recorded_fingerprint(require(paths.data_summary, "data"))]
    if spec.uses_teacher:
        stamps.append(read_json(require(paths.label_dir / "summary.json", "label")).get("splits"))
    return stamps


def _augmented_rows(spec: SmallStudentSpec, augmented: pd.DataFrame) -> pd.DataFrame:
    """The teacher-labelled rows this student learns from: those its `data` keeps (augmentation ops, pool or both),
    of them `augment_ops` only, at most `max_augmented_rows`."""
    augmented = augmented[augmented["op"].map(spec.training_data.keeps).astype(bool)]
    if spec.augment_ops is not None:
        augmented = augmented[augmented["op"].isin(spec.augment_ops)]
    if spec.max_augmented_rows is not None and len(augmented) > spec.max_augmented_rows:
        augmented = augmented.sample(n=spec.max_augmented_rows, random_state=spec.seed).sort_index()
    return augmented.reset_index(drop=True)


def distill_one(config: Config, spec: SmallStudentSpec, paths: RunPaths, cache: TokenCache,
                out_dir: Path | None = None, on_epoch: Callable[[float], None] | None = None) -> dict:
    """Train one student into `out_dir` (default `students/<name>/`) unless it is up to date; its metrics.
    `on_epoch(dev_accuracy)` runs after each epoch (the search's pruner hook)."""
    out_dir = out_dir or paths.root / "students" / spec.name
    stamp = fingerprint(config.task, spec, _inputs_stamp(spec, paths))
    if recorded_fingerprint(out_dir / "metrics.json") == stamp and (out_dir / "model").is_dir():
        return read_json(out_dir / "metrics.json") | {"skipped": True}
    if spec.threads:
        torch.set_num_threads(spec.threads)

    task, columns = config.task, text_columns(config.task)
    names = task.display_names
    teacher_rows = spec.training_data.teacher_rows
    train = pd.read_parquet(require(paths.labels("train"), "label") if spec.uses_teacher else paths.split("train"))
    repeats = spec.gold_repeats if teacher_rows else 1
    sources = [train.assign(target=train["label"])] * repeats
    if teacher_rows:
        augmented = _augmented_rows(spec, pd.read_parquet(require(paths.labels("augmented"), "label")))
        teacher_label = np.stack(augmented["logits"].to_numpy()).argmax(1)
        sources.append(augmented.assign(target=teacher_label if spec.augmented_target == "hard" else NO_TARGET))
    rows = pd.concat(sources, ignore_index=True)
    augmented_rows = len(rows) - repeats * len(train)

    texts = train[columns].to_numpy().ravel().tolist()
    tokenizer = StudentTokenizer.build(cache.split(spec.tokens, texts, spec.segmenter), spec.tokens, spec.vocab_size,
                                       spec.min_freq, task.max_length, spec.segmenter)
    dev = pd.read_parquet(paths.split("dev"))
    test = pd.read_parquet(paths.split("test"))

    def encode(frame: pd.DataFrame, targets: np.ndarray) -> Encoded:
        return encode_table(frame, columns, tokenizer, cache, targets, len(names))

    train_encoded = encode(rows, rows["target"].to_numpy())
    dev_encoded, test_encoded = encode(dev, dev["label"].to_numpy()), encode(test, test["label"].to_numpy())

    outcome = train_small_student(spec, tokenizer, train_encoded, dev_encoded, dev["label"].to_numpy(),
                                  names, pair=len(columns) == 2, on_epoch=on_epoch)
    figures = {}
    for split, frame, encoded in (("dev", dev, dev_encoded), ("test", test, test_encoded)):
        started = time.perf_counter()
        predicted = predict(outcome.model, tokenizer, encoded).argmax(1)
        figures[split] = classification_metrics(frame["label"].to_numpy(), predicted, names)
        figures[split]["seconds"] = round(time.perf_counter() - started, 3)

    with atomic_path(out_dir / "model") as tmp:
        outcome.model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    with atomic_path(out_dir / "train_log.csv") as tmp:
        pd.DataFrame(outcome.log).to_csv(tmp, index=False)
    metrics = {
        "fingerprint": stamp,
        "student": spec.name,
        "kind": spec.kind,
        "data": spec.data,
        "dev": figures["dev"],
        "test": figures["test"],
        "train_rows": {"gold": len(train), "augmented": augmented_rows, "gold_repeats": repeats},
        "best_epoch": outcome.best_epoch,
        "train_seconds": round(outcome.seconds, 1),
        "parameters": sum(p.numel() for p in outcome.model.parameters()),
        "size_bytes": sum(f.stat().st_size for f in (out_dir / "model").iterdir()),
        "vocabulary": len(tokenizer),
        "config": spec.model_dump(mode="json"),
        "environment": environment(spec.threads),
    }
    write_json(out_dir / "metrics.json", metrics)
    return metrics
