"""Q/K/V capture by forward hooks on a tiny random BERT: the right tensors, hooks removed afterwards."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers import BertConfig, BertForSequenceClassification

from tinykd.student.losses.relation import relation_loss
from tinykd.student.trainers.qkv_capture import capture_qkv


def _bert(layers: int = 3, hidden: int = 32, heads: int = 4, seed: int = 0) -> BertForSequenceClassification:
    torch.manual_seed(seed)
    return BertForSequenceClassification(BertConfig(
        vocab_size=50, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
        intermediate_size=2 * hidden, max_position_embeddings=32,
    )).eval()


def test_captures_the_chosen_layers_projections():
    model = _bert()
    ids = torch.randint(5, 50, (2, 7))
    layer = model.bert.encoder.layer[2].attention.self
    before = {p: len(getattr(layer, p)._forward_hooks) for p in ("query", "key", "value")}
    with capture_qkv(model, layer=-1) as calls, torch.no_grad():
        states = model(input_ids=ids, output_hidden_states=True).hidden_states
    assert len(calls) == 1
    last = calls[0]
    assert set(last) == {"query", "key", "value"} and last["query"].shape == (2, 7, 32)
    torch.testing.assert_close(last["key"], layer.key(states[2]))  # input of the last layer = hidden_states[2]
    assert {p: len(getattr(layer, p)._forward_hooks) for p in before} == before  # our hooks removed on exit


def test_same_model_gives_zero_relation_loss_and_a_different_one_does_not():
    teacher, student = _bert(hidden=32, heads=4, seed=0), _bert(layers=2, hidden=16, heads=2, seed=1)
    ids, mask = torch.randint(5, 50, (3, 6)), torch.ones(3, 6, dtype=torch.bool)
    with capture_qkv(teacher, -1) as t, capture_qkv(student, -1) as s, torch.no_grad():
        teacher(input_ids=ids)
        student(input_ids=ids)
    (t,), (s,) = t, s
    assert relation_loss(t, t, mask, heads=4).item() == pytest.approx(0.0, abs=1e-6)
    assert relation_loss(t, s, mask, heads=4).item() > 0


def test_each_forward_is_captured_apart():
    """A bi-encoder runs its encoder once per side: each call's Q/K/V are kept, in call order, at their own length."""
    model = _bert()
    first, second = torch.randint(5, 50, (2, 7)), torch.randint(5, 50, (2, 4))
    with capture_qkv(model, -1) as calls, torch.no_grad():
        model(input_ids=first)
        model(input_ids=second)
    assert [c["value"].shape for c in calls] == [(2, 7, 32), (2, 4, 32)]
    with capture_qkv(model, -1) as alone, torch.no_grad():
        model(input_ids=second)
    torch.testing.assert_close(calls[1]["query"], alone[0]["query"])


def test_clear_errors():
    with pytest.raises(ValueError, match="layer 3 is out of range: BertForSequenceClassification has 3 layers"):
        with capture_qkv(_bert(), 3):
            pass
    with pytest.raises(ValueError, match="Linear has no BERT-style encoder.layer list"):
        with capture_qkv(nn.Linear(2, 2), 0):
            pass
