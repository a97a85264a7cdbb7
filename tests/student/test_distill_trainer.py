"""DistillationTrainer on a tiny random teacher and student: frozen teacher, named terms, student-only grads."""

from __future__ import annotations

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, TrainingArguments

from tests.conftest import sentiment_rows
from tinykd.student.models.tiny_transformer import build_tiny_transformer
from tinykd.student.trainers.distill_trainer import DistillationCollator, DistillationTrainer, LossSettings
from tinykd.vocabulary_pruning import prune_tokenizer, used_token_ids


def _features(tokenizer, rows, with_logits: bool) -> list[dict]:
    out = []
    for i, (label, text) in enumerate(rows):
        feature = dict(tokenizer(text, truncation=True, max_length=32))
        feature["labels"] = int(label == "pos") if i % 2 == 0 else -100  # odd rows: teacher-labelled only
        if with_logits:
            feature["teacher_logits"] = [0.5, -0.5] if label == "neg" else [-0.5, 0.5]
        out.append(feature)
    return out


def test_trainer_updates_only_the_student_and_logs_each_term(tiny_teacher, tmp_path):
    teacher = AutoModelForSequenceClassification.from_pretrained(tiny_teacher)
    tokenizer = AutoTokenizer.from_pretrained(tiny_teacher)
    rows = sentiment_rows(64)
    keep = used_token_ids(tokenizer, [text for _, text in rows])
    student_tokenizer = prune_tokenizer(tokenizer, keep)
    student = build_tiny_transformer(teacher, layers=1, hidden=16, heads=2, intermediate=32, keep_tokens=keep)
    teacher_before = {k: v.clone() for k, v in teacher.state_dict().items()}
    student_before = {k: v.clone() for k, v in student.state_dict().items()}
    trainer = DistillationTrainer(
        model=student,
        args=TrainingArguments(output_dir=str(tmp_path), num_train_epochs=1, per_device_train_batch_size=8,
                               learning_rate=1e-2, logging_steps=2, report_to="none", save_strategy="no",
                               remove_unused_columns=False, use_cpu=True),
        train_dataset=_features(student_tokenizer, rows, with_logits=True),
        data_collator=DistillationCollator(student_tokenizer, num_labels=2),
        teacher=teacher,
        losses=LossSettings(weights={"relation": 1.0, "soft": 1.0, "hard": 1.0}, relation_heads=2),
        token_map=torch.tensor(keep),
    )
    trainer.train()
    optimized = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert optimized <= {id(p) for p in student.parameters()}
    assert not optimized & {id(p) for p in teacher.parameters()}
    assert not teacher.training and all(p.grad is None for p in teacher.parameters())
    assert all(torch.equal(v, teacher_before[k]) for k, v in teacher.state_dict().items())
    assert any(not torch.equal(v, student_before[k]) for k, v in student.state_dict().items())
    logged = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert logged and all({"loss_relation", "loss_soft", "loss_hard"} <= set(entry) for entry in logged)
    assert all(entry["loss_relation"] > 0 for entry in logged)
