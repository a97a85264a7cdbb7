"""One tiny transformer student through its schedule: general -> task_relation -> task_prediction.

ERNIE-Tiny's task distillation (TD1: last-layer self-attention relations; TD2: soft + hard labels) with
any student size and any teacher layer; for pair tasks the student is a cross-encoder like the teacher or a
bi-encoder (`shape: bi`; its relations are learned per side, the teacher reading each text alone). Each schedule
stage trains with `DistillationTrainer` in `students/<name>/stages/<i>-<stage>/` (checkpoints every `save_steps`;
a killed stage resumes), saves its model there, and the next stage warm-starts from it; a finished stage whose
inputs are unchanged is not trained again. `task_prediction` stages keep their best dev epoch. The result is written
like the small students': `students/<name>/model/` (HF model + its pruned tokenizer), `metrics.json`,
`train_log.csv` (every Trainer log line, one column per loss term).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    TrainerCallback,
    TrainingArguments,
)

import tinykd.teacher  # noqa: F401  (registers the mean-pool classifier with the Auto classes)
from tinykd.artifacts import (
    RunPaths,
    atomic_path,
    directory_digest,
    fingerprint,
    read_json,
    recorded_fingerprint,
    require,
    write_json,
)
from tinykd.config import Config, ScheduleStage, TransformerStudentSpec
from tinykd.config.training_data import TRAINING_DATA
from tinykd.environment import environment
from tinykd.errors import ArtifactError
from tinykd.hf_training import (
    BEST_FILE,
    KeepBestOnDev,
    checkpoint_step,
    dev_accuracy,
    prepare_checkpoints,
)
from tinykd.metrics import classification_metrics
from tinykd.peoples_daily import read_peoples_daily
from tinykd.student.losses.hard import NO_TARGET
from tinykd.student.models.bi_encoder import build_bi_encoder
from tinykd.student.models.tiny_transformer import build_tiny_transformer, encoder_config
from tinykd.student.trainers.distill_trainer import DistillationCollator, DistillationTrainer, LossSettings
from tinykd.teacher.bi_encoder import BiEncoderForSequenceClassification  # also registers it with the Auto classes
from tinykd.teacher.encoding import encode_rows, predict_logits
from tinykd.teacher.ensemble import structural_teacher
from tinykd.vocabulary_pruning import prune_tokenizer, used_token_ids

TOKEN_MAP = "tinykd_token_map.json"  # student token id -> teacher token id, saved beside a pruned student
PAIRS = {"Q-Q": ("query", "query"), "K-K": ("key", "key"), "V-V": ("value", "value"), "Q-K": ("query", "key")}


def distill_transformer(config: Config, spec: TransformerStudentSpec, paths: RunPaths,
                        out_dir: Path | None = None, on_epoch: Callable[[float], None] | None = None) -> dict:
    """Train `spec` through its schedule into `out_dir` (default `students/<name>/`); its metrics.
    `on_epoch(dev_accuracy)` runs after each dev evaluation of a task_prediction stage (the search's pruner hook)."""
    out_dir = out_dir or paths.root / "students" / spec.name
    inputs = _inputs_stamp(config, spec, paths)
    stamp = fingerprint(config.task, spec, inputs)
    if recorded_fingerprint(out_dir / "metrics.json") == stamp and (out_dir / "model").is_dir():
        return read_json(out_dir / "metrics.json") | {"skipped": True}
    if spec.threads:
        torch.set_num_threads(spec.threads)

    # An ensemble teacher's labels are in the label tables; layers and relations come from its first member.
    teacher_model = structural_teacher(
        AutoModelForSequenceClassification.from_pretrained(require(paths.teacher_model, "teacher")))
    teacher_tokenizer = AutoTokenizer.from_pretrained(paths.teacher_model)
    tables = _Tables(config, paths)
    keep = _kept_tokens(config, spec, teacher_tokenizer, tables) if spec.prune_vocabulary else None
    tokenizer = prune_tokenizer(teacher_tokenizer, keep) if keep is not None else teacher_tokenizer
    model = _initial_student(spec, teacher_model, keep)
    sides = spec.shape == "bi"  # a bi-encoder reads the two texts of a pair apart
    token_map = torch.tensor(keep) if keep is not None else None

    # Stage i's fingerprint covers the student's shape and init and stages 0..i only, so editing a later
    # stage keeps the earlier stages' results.
    log, started = [], time.perf_counter()
    stage_stamp = fingerprint(config.task, spec.model_dump(mode="json", exclude={"schedule"}), inputs)
    for i, stage in enumerate(spec.schedule):
        stage_dir = out_dir / "stages" / f"{i}-{stage.stage}"
        stage_stamp = fingerprint(stage_stamp, stage, i)  # changes when this or any earlier stage changes
        model, stage_log = _run_stage(config, spec, stage, stage_dir, stage_stamp, model, tokenizer, teacher_model,
                                      token_map, tables, on_epoch)
        log += [entry | {"schedule_stage": f"{i}-{stage.stage}"} for entry in stage_log]
    train_seconds = time.perf_counter() - started

    names = config.task.display_names
    figures = {}
    for split in ("dev", "test"):
        rows = tables.split(split)
        t0 = time.perf_counter()
        logits = predict_logits(model, tokenizer, encode_rows(tokenizer, rows, config.task.max_length, sides),
                                spec.eval_batch_size)
        figures[split] = classification_metrics(rows["label"].to_numpy(), logits.argmax(-1), names)
        figures[split]["seconds"] = round(time.perf_counter() - t0, 3)

    if not _main_process():
        return {"dev": figures["dev"], "test": figures["test"]}
    with atomic_path(out_dir / "model") as tmp:
        _save(model, tokenizer, keep, tmp)
    with atomic_path(out_dir / "train_log.csv") as tmp:
        pd.DataFrame(log).to_csv(tmp, index=False)
    hidden = encoder_config(model.config).hidden_size
    teacher_vocab = encoder_config(teacher_model.config).vocab_size
    parameters = sum(p.numel() for p in model.parameters())
    metrics = {
        "fingerprint": stamp,
        "student": spec.name,
        "kind": spec.kind,
        "dev": figures["dev"],
        "test": figures["test"],
        "train_seconds": round(train_seconds, 1),
        "parameters": parameters,
        "parameters_unpruned": parameters + (teacher_vocab - len(tokenizer)) * hidden,
        "teacher_parameters": sum(p.numel() for p in teacher_model.parameters()),
        "vocabulary": len(tokenizer),
        "teacher_vocabulary": teacher_vocab,
        "test_unknown_token_rate": _unknown_rate(tokenizer, tables.split("test"), config.task.max_length, sides),
        "size_bytes": sum(f.stat().st_size for f in (out_dir / "model").iterdir()),
        "config": spec.model_dump(mode="json"),
        "environment": environment(spec.threads),
    }
    write_json(out_dir / "metrics.json", metrics)
    return metrics


class _Tables:
    """The stage inputs, read once: labelled train/augmented rows, dev/test splits, the general corpus."""

    def __init__(self, config: Config, paths: RunPaths) -> None:
        self.config, self.paths = config, paths
        self._cache: dict[str, pd.DataFrame] = {}

    def split(self, name: str) -> pd.DataFrame:
        if name not in self._cache:
            self._cache[name] = pd.read_parquet(require(self.paths.split(name), "data"))
        return self._cache[name]

    def labelled(self, name: str) -> pd.DataFrame:
        key = f"labelled-{name}"
        if key not in self._cache:
            self._cache[key] = pd.read_parquet(require(self.paths.labels(name), "label"))
        return self._cache[key]

    def general(self) -> pd.DataFrame:
        if "general" not in self._cache:
            self._cache["general"] = pd.DataFrame({"text_a": read_peoples_daily()})
        return self._cache["general"]

    def rows(self, data: str) -> pd.DataFrame:
        """Rows of a stage's data kind (tinykd.config.training_data) with `target` (class id or -100) and `logits`
        (list or None)."""
        kind = TRAINING_DATA[data]
        if kind.general:
            return self.general().assign(target=NO_TARGET, logits=None)
        train = self.labelled("train")
        frames = [train.assign(target=train["label"].astype(int))]
        if kind.teacher_rows:
            augmented = self.labelled("augmented")
            augmented = augmented[augmented["op"].map(kind.keeps).astype(bool)].reset_index(drop=True)
            teacher_label = np.stack(augmented["logits"].to_numpy()).argmax(1) if len(augmented) else []
            frames.append(augmented.assign(target=teacher_label))
        return pd.concat(frames, ignore_index=True)

    def texts(self, data: str) -> list[str]:
        frame = self.rows(data) if data != "unlabeled" else self.general()
        columns = [c for c in ("text_a", "text_b") if c in frame]
        return frame[columns].to_numpy().ravel().tolist()


def _inputs_stamp(config: Config, spec: TransformerStudentSpec, paths: RunPaths) -> list:
    stamp = [recorded_fingerprint(require(paths.teacher_metrics, "teacher")),
             read_json(require(paths.label_dir / "summary.json", "label")).get("splits"),
             str(spec.checkpoint.resolve()) if spec.checkpoint else None]
    if spec.init == "checkpoint" and spec.checkpoint.is_dir():
        stamp.append(directory_digest(spec.checkpoint))  # its files: retraining the base retrains this student
    return stamp


def _kept_tokens(config: Config, spec: TransformerStudentSpec, tokenizer, tables: _Tables) -> list[int]:
    """Tokens of every text the student trains or is selected on (never the test split)."""
    kinds = {spec.stage_data(stage, config.augment is not None) for stage in spec.schedule} | {"gold"}
    texts = [text for kind in sorted(kinds) for text in tables.texts(kind)]
    dev = tables.split("dev")
    texts += dev[[c for c in ("text_a", "text_b") if c in dev]].to_numpy().ravel().tolist()
    return used_token_ids(tokenizer, dict.fromkeys(texts))  # gold rows are also in distilled: tokenize once


def _initial_student(spec: TransformerStudentSpec, teacher_model: PreTrainedModel, keep: list[int] | None):
    if spec.init == "checkpoint":
        if not (spec.checkpoint / "config.json").is_file():
            raise ArtifactError(f"students.{spec.name}.checkpoint: {spec.checkpoint} holds no saved model "
                                "(config.json); train the student that writes it first (list it earlier in students)")
        model = AutoModelForSequenceClassification.from_pretrained(spec.checkpoint)
        if isinstance(model, BiEncoderForSequenceClassification) != (spec.shape == "bi"):
            raise ValueError(f"students.{spec.name}.checkpoint: {spec.checkpoint} holds a "
                             f"{'bi' if spec.shape != 'bi' else 'cross'}-encoder; this student has shape '{spec.shape}'")
        saved = spec.checkpoint / TOKEN_MAP
        saved_keep = json.loads(saved.read_text()) if saved.exists() else None
        if saved_keep != keep:
            raise ValueError(f"{spec.checkpoint}: its vocabulary differs from this student's; "
                             "use the same prune_vocabulary setting and data as the run that wrote it")
        return model
    build = build_bi_encoder if spec.shape == "bi" else build_tiny_transformer
    return build(teacher_model, spec.layers, spec.hidden, spec.heads, spec.intermediate, init=spec.init,
                 teacher_layers=spec.teacher_layers, keep_tokens=keep, seed=spec.seed)


def _run_stage(config, spec, stage: ScheduleStage, stage_dir: Path, stamp: str, model, tokenizer, teacher_model,
               token_map, tables: _Tables, on_epoch: Callable[[float], None] | None = None):
    """Train one schedule stage (or reuse its finished result); the model it ends with and its log."""
    done = stage_dir / "model"
    if recorded_fingerprint(stage_dir / "stage.json") == stamp and done.is_dir():
        return AutoModelForSequenceClassification.from_pretrained(done), read_json(stage_dir / "stage.json")["log"]

    data = spec.stage_data(stage, config.augment is not None)
    rows = tables.rows(data)
    if stage.max_rows is not None and len(rows) > stage.max_rows:
        rows = rows.sample(n=stage.max_rows, random_state=spec.seed).reset_index(drop=True)
    predicting = stage.stage == "task_prediction"
    sides = spec.shape == "bi"
    features = _features(tokenizer, rows, config.task.max_length, sides)
    dev = encode_rows(tokenizer, tables.split("dev"), config.task.max_length, sides) if predicting else None

    work = stage_dir / "checkpoints"
    resume_from = prepare_checkpoints(work, stamp)
    best_dir = stage_dir / "best"
    if resume_from is None:
        shutil.rmtree(best_dir, ignore_errors=True)
    relation = spec.relation
    trainer = DistillationTrainer(
        model=model,
        args=TrainingArguments(
            output_dir=str(work), num_train_epochs=stage.epochs, per_device_train_batch_size=stage.batch_size,
            per_device_eval_batch_size=spec.eval_batch_size, learning_rate=stage.learning_rate,
            weight_decay=stage.weight_decay, lr_scheduler_type="linear", warmup_steps=stage.warmup_ratio,
            eval_strategy="epoch" if predicting else "no", save_strategy="steps", save_steps=spec.save_steps,
            save_total_limit=1, logging_steps=25, report_to="none", seed=spec.seed, remove_unused_columns=False,
            dataloader_num_workers=0, dataloader_pin_memory=torch.cuda.is_available(),
            use_cpu=not torch.cuda.is_available(),  # so `torchrun` on CPU runs DDP over gloo
        ),
        train_dataset=features,
        eval_dataset=dev,
        data_collator=DistillationCollator(tokenizer, len(config.task.labels)),
        processing_class=tokenizer,
        compute_metrics=dev_accuracy if predicting else None,
        callbacks=([KeepBestOnDev(best_dir, tokenizer)] + ([_DevAccuracyHook(on_epoch)] if on_epoch else [])
                   if predicting else []),
        teacher=teacher_model,
        losses=LossSettings(weights=stage.loss_weights, temperature=stage.temperature, relation_heads=relation.heads,
                            relation_pairs=tuple(PAIRS[p] for p in relation.pairs),
                            teacher_layer=relation.teacher_layer),
        token_map=token_map,
    )
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    seconds = time.perf_counter() - started
    # Under torchrun every process gets here; process 0 wrote the best checkpoint and writes the results.
    _barrier()
    if predicting and (best_dir / BEST_FILE).exists():
        model = AutoModelForSequenceClassification.from_pretrained(best_dir)
    _barrier()
    log = trainer.state.log_history
    if trainer.is_world_process_zero():
        with atomic_path(done) as tmp:
            _save(model, tokenizer, token_map.tolist() if token_map is not None else None, tmp)
        write_json(stage_dir / "stage.json", {
            "fingerprint": stamp, "stage": stage.stage, "data": data, "rows": len(features),
            "seconds": round(seconds, 1), "world_size": trainer.args.world_size,
            "resumed_from_step": checkpoint_step(resume_from), "log": log,
        })
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(best_dir, ignore_errors=True)
    _barrier()
    return model, log


class _DevAccuracyHook(TrainerCallback):
    """Passes each dev evaluation's accuracy to `on_epoch` (which may raise to stop the run, e.g. a pruned trial)."""

    def __init__(self, on_epoch: Callable[[float], None]) -> None:
        self.on_epoch = on_epoch

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if metrics and "eval_accuracy" in metrics:
            self.on_epoch(metrics["eval_accuracy"])


def _barrier() -> None:
    """Wait for every process of a `torchrun` job (no-op in a single process)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


def _main_process() -> bool:
    """False in the other processes of a `torchrun` job, which train but do not write results."""
    return int(os.environ.get("RANK", "0")) == 0


def _features(tokenizer, rows: pd.DataFrame, max_length: int, sides: bool) -> list[dict]:
    features = encode_rows(tokenizer, rows.drop(columns=["label"], errors="ignore"), max_length, sides)
    for feature, target, logits in zip(features, rows["target"].tolist(), rows["logits"].tolist()):
        feature["labels"] = int(target)
        if logits is not None:
            feature["teacher_logits"] = [float(x) for x in logits]
    return features


def _save(model: PreTrainedModel, tokenizer, keep: list[int] | None, directory: Path) -> None:
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    if keep is not None:
        (directory / TOKEN_MAP).write_text(json.dumps(keep))


def _unknown_rate(tokenizer, rows: pd.DataFrame, max_length: int, sides: bool) -> float:
    """Share of test tokens the (pruned) vocabulary maps to the unknown token."""
    ids = [i for f in encode_rows(tokenizer, rows, max_length, sides) for key in ("input_ids", "input_ids_b")
           for i in f.get(key, ())]
    return float(np.mean([i == tokenizer.unk_token_id for i in ids])) if ids else 0.0
