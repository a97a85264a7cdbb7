"""Tiny transformer students built from a tiny random teacher: layer choice, exact copies, pruning."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, BertConfig, BertForSequenceClassification

from tests.conftest import sentiment_rows
from tinykd.student.models.tiny_transformer import build_tiny_transformer, evenly_spaced_layers
from tinykd.vocabulary_pruning import prune_tokenizer, used_token_ids


def _teacher(layers: int = 6, hidden: int = 32, heads: int = 4) -> BertForSequenceClassification:
    torch.manual_seed(0)
    return BertForSequenceClassification(BertConfig(
        vocab_size=60, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
        intermediate_size=2 * hidden, max_position_embeddings=32, num_labels=2)).eval()


def test_evenly_spaced_layers_end_with_the_last():
    assert evenly_spaced_layers(12, 4) == [2, 5, 8, 11]
    assert evenly_spaced_layers(12, 3) == [3, 7, 11]
    assert evenly_spaced_layers(6, 6) == [0, 1, 2, 3, 4, 5]
    with pytest.raises(ValueError, match="a student of 7 layers cannot take layers from a 6-layer teacher"):
        evenly_spaced_layers(6, 7)


def test_full_width_student_of_all_layers_is_the_teacher():
    teacher = _teacher()
    student = build_tiny_transformer(teacher, layers=6, hidden=32, heads=4, intermediate=64).eval()
    ids = torch.randint(4, 60, (3, 9))
    torch.testing.assert_close(student(input_ids=ids).logits, teacher(input_ids=ids).logits)


def test_chosen_layers_are_copied_and_narrow_students_take_leading_slices():
    teacher = _teacher()
    student = build_tiny_transformer(teacher, layers=2, hidden=16, heads=2, intermediate=24, teacher_layers=[1, 5])
    assert student.config.num_hidden_layers == 2 and student.config.hidden_size == 16
    t_query = teacher.bert.encoder.layer[5].attention.self.query.weight
    torch.testing.assert_close(student.bert.encoder.layer[1].attention.self.query.weight, t_query[:16, :16])
    t_ffn = teacher.bert.encoder.layer[1].intermediate.dense.weight
    torch.testing.assert_close(student.bert.encoder.layer[0].intermediate.dense.weight, t_ffn[:24, :16])
    random = build_tiny_transformer(teacher, layers=2, hidden=16, heads=2, intermediate=24, init="random")
    assert not torch.equal(random.bert.encoder.layer[1].attention.self.query.weight, t_query[:16, :16])


def test_pruned_student_of_the_tiny_teacher_matches_on_task_text(tiny_teacher):
    teacher = AutoModelForSequenceClassification.from_pretrained(tiny_teacher).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_teacher)
    texts = [text for _, text in sentiment_rows(30)]
    keep = used_token_ids(tokenizer, texts)
    layers = teacher.config.num_hidden_layers
    student = build_tiny_transformer(teacher, layers=layers, hidden=teacher.config.hidden_size,
                                     heads=teacher.config.num_attention_heads,
                                     intermediate=teacher.config.intermediate_size, keep_tokens=keep).eval()
    pruned = prune_tokenizer(tokenizer, keep)
    assert student.config.vocab_size == len(keep) and student.config.pad_token_id == pruned.pad_token_id
    with torch.no_grad():
        want = teacher(**tokenizer(texts, padding=True, return_tensors="pt")).logits
        got = student(**pruned(texts, padding=True, return_tensors="pt")).logits
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


def test_bad_shapes_are_clear_errors():
    with pytest.raises(ValueError, match="hidden size 30 is not a multiple of 4 heads"):
        build_tiny_transformer(_teacher(), layers=2, hidden=30, heads=4, intermediate=24)
    with pytest.raises(ValueError, match="teacher_layers lists 1 layers for a 2-layer student"):
        build_tiny_transformer(_teacher(), layers=2, hidden=16, heads=2, intermediate=24, teacher_layers=[3])
