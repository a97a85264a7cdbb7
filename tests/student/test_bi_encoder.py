"""Bi-encoder tiny transformer: built from teacher layers, cached scoring = uncached, reload, ONNX export, and the
relation loss per side (the teacher reads each text alone, as the student does)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, BertConfig, BertForSequenceClassification, TrainingArguments

from tinykd.onnx_graph import OrtRunner, export_logits_graph
from tinykd.student.losses.relation import relation_loss
from tinykd.student.models.bi_encoder import build_bi_encoder
from tinykd.student.trainers.distill_trainer import DistillationTrainer, LossSettings
from tinykd.student.trainers.qkv_capture import capture_qkv
from tinykd.teacher.bi_encoder import BiEncoderConfig, BiEncoderForSequenceClassification


def _teacher(dropout: float = 0.1) -> BertForSequenceClassification:
    torch.manual_seed(0)
    return BertForSequenceClassification(BertConfig(
        vocab_size=60, hidden_size=32, num_hidden_layers=4, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=32, num_labels=2, hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout)).eval()


def _pairs(rows: int = 3, length: int = 7, length_b: int = 5, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    ids, ids_b = torch.randint(4, 60, (rows, length), generator=generator), torch.randint(4, 60, (rows, length_b),
                                                                                           generator=generator)
    mask, mask_b = torch.ones_like(ids), torch.ones_like(ids_b)
    mask[0, -2:] = 0  # a padded row on each side (the same row when there is one)
    mask_b[-1, -1:] = 0
    return {"input_ids": ids, "attention_mask": mask, "input_ids_b": ids_b, "attention_mask_b": mask_b}


def test_encoder_is_the_tiny_transformer_of_the_chosen_teacher_layers():
    teacher = _teacher()
    model = build_bi_encoder(teacher, layers=2, hidden=16, heads=2, intermediate=24, teacher_layers=[1, 3])
    query = teacher.bert.encoder.layer[3].attention.self.query.weight
    torch.testing.assert_close(model.encoder.encoder.layer[1].attention.self.query.weight, query[:16, :16])
    assert model.head[1].in_features == 4 * 16 and model.config.num_labels == 2
    assert model.config.id2label == teacher.config.id2label


def test_a_bi_encoder_teacher_gives_its_layers_and_the_student_an_mlp_head():
    """`teacher.shape: bi`: the student copies the cosine teacher's encoder layers and learns its own head."""
    cross = _teacher()
    teacher = BiEncoderForSequenceClassification(BiEncoderConfig(encoder=cross.config, head="cosine", num_labels=2))
    teacher.encoder.load_state_dict(cross.bert.state_dict())
    model = build_bi_encoder(teacher, layers=2, hidden=16, heads=2, intermediate=24, teacher_layers=[0, 2])
    query = teacher.encoder.encoder.layer[2].attention.self.query.weight
    torch.testing.assert_close(model.encoder.encoder.layer[1].attention.self.query.weight, query[:16, :16])
    assert model.config.head == "mlp" and model.head[1].in_features == 4 * 16
    with torch.no_grad():
        assert model(**_pairs()).logits.shape == (3, 2)


def test_the_mean_pool_ignores_padding():
    model = build_bi_encoder(_teacher(), layers=2, hidden=32, heads=4, intermediate=64).eval()
    ids = torch.randint(4, 60, (1, 6))
    padded = torch.cat([ids, torch.zeros(1, 3, dtype=torch.long)], dim=1)
    mask = torch.cat([torch.ones(1, 6, dtype=torch.long), torch.zeros(1, 3, dtype=torch.long)], dim=1)
    torch.testing.assert_close(model.embed(padded, mask), model.embed(ids, torch.ones_like(ids)), atol=1e-5, rtol=0)


def test_cached_candidates_score_as_the_pairs_do():
    """A query embedded once against cached candidate embeddings gives each pair's own logits."""
    model = build_bi_encoder(_teacher(), layers=2, hidden=32, heads=4, intermediate=64).eval()
    batch = _pairs(rows=4)
    query = {k: batch[k][:1] for k in ("input_ids", "attention_mask")}
    with torch.no_grad():
        candidates = model.embed(batch["input_ids_b"], batch["attention_mask_b"])  # (C, H), cached once
        cached = model.compare(model.embed(**query), candidates)  # (C, K)
        uncached = model(input_ids=query["input_ids"].expand(4, -1), attention_mask=query["attention_mask"].expand(4, -1),
                         input_ids_b=batch["input_ids_b"], attention_mask_b=batch["attention_mask_b"]).logits
    torch.testing.assert_close(cached, uncached, atol=1e-5, rtol=0)


def test_saved_bi_encoder_reloads_through_the_auto_class(tmp_path):
    model = build_bi_encoder(_teacher(), layers=2, hidden=16, heads=2, intermediate=24).eval()
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    assert isinstance(reloaded, BiEncoderForSequenceClassification)
    batch = _pairs()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**batch).logits, model(**batch).logits)


def test_onnx_export_matches_torch_within_1e_4(tmp_path):
    model = build_bi_encoder(_teacher(), layers=2, hidden=32, heads=4, intermediate=64).eval()
    export_logits_graph(model, {k: v.numpy() for k, v in _pairs().items()}, tmp_path / "model.onnx", 17)
    runner = OrtRunner(tmp_path / "model.onnx", threads=1)
    for batch in (_pairs(rows=5, length=11, length_b=3, seed=1), _pairs(rows=1, length=4, length_b=9, seed=2)):
        with torch.no_grad():
            reference = model(**batch).logits.numpy()
        assert np.abs(runner({k: v.numpy() for k, v in batch.items()}) - reference).max() < 1e-4


def _relation_term(teacher, student, batch, tmp_path) -> float:
    """The trainer's relation loss (weight 1, nothing else) on one batch, the student in training mode."""
    trainer = DistillationTrainer(
        model=student.train(), args=TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none"),
        teacher=teacher, losses=LossSettings(weights={"relation": 1.0}, relation_heads=4))
    with torch.no_grad():
        return trainer.compute_loss(student, dict(batch)).item()


def test_relation_loss_per_side_is_zero_for_a_student_equal_to_the_teacher(tmp_path):
    """Every teacher layer at full width: the student's encoder is the teacher's, so its relations on each text
    alone are the teacher's on that text alone (were the teacher reading the pair, they would differ)."""
    teacher = _teacher(dropout=0.0)
    same = build_bi_encoder(teacher, layers=4, hidden=32, heads=4, intermediate=64)
    assert _relation_term(teacher, same, _pairs(rows=4), tmp_path) == pytest.approx(0.0, abs=1e-6)


def test_relation_loss_per_side_weighs_each_real_token_of_both_sides(tmp_path):
    """The term equals the two sides' losses, each computed alone, weighted by their real query tokens."""
    teacher = _teacher(dropout=0.0)
    student = build_bi_encoder(teacher, layers=2, hidden=16, heads=2, intermediate=24, init="random", seed=1)
    batch = _pairs(rows=3, length=7, length_b=5)
    by_side, tokens = [], []
    for ids, mask in (("input_ids", "attention_mask"), ("input_ids_b", "attention_mask_b")):
        with capture_qkv(teacher, -1) as t, capture_qkv(student, -1) as s, torch.no_grad():
            teacher(input_ids=batch[ids], attention_mask=batch[mask])
            student.embed(batch[ids], batch[mask])
        by_side.append(relation_loss(t[0], s[0], batch[mask], heads=4))
        tokens.append(batch[mask].sum())
    expected = (by_side[0] * tokens[0] + by_side[1] * tokens[1]) / (tokens[0] + tokens[1])
    assert expected.item() > 1e-4
    assert _relation_term(teacher, student, batch, tmp_path) == pytest.approx(expected.item(), rel=1e-5)
