"""MiniLMv2 relation loss: a hand-computed case, then properties on random Q/K/V (zero for identical
relations, masked padding, any head count)."""

from __future__ import annotations

import math

import pytest
import torch

from tinykd.student.losses.relation import relation_loss

ALL_PAIRS = (("query", "query"), ("key", "key"), ("value", "value"), ("query", "key"))


def _qkv(batch: int, length: int, hidden: int, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {name: torch.randn(batch, length, hidden, generator=g) for name in ("query", "key", "value")}


def _softmax(scores: list[float]) -> list[float]:
    exps = [math.exp(x) for x in scores]
    return [e / sum(exps) for e in exps]


def _kl(p: list[float], q: list[float]) -> float:
    return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))


# One sentence of 2 tokens, pair Q-K, R = 2 relation heads. The teacher has hidden 6, so d_r = 3: √d_r = √3
# differs from √hidden = √6 and from √R = √2 (with R = 1, d_r would equal the hidden size and a wrong
# scale could not show). The student has hidden 2, so d_r = 1. Rows are tokens; head r (from 0) takes
# columns r·d_r to (r + 1)·d_r − 1.
TEACHER_Q = [[1.0, 0.0, 2.0, 0.0, 1.0, 0.0],
             [0.0, 1.0, 0.0, 1.0, 0.0, 0.0]]
TEACHER_K = [[1.0, 1.0, 0.0, 0.0, 0.0, 2.0],
             [0.0, 0.0, 1.0, 2.0, 0.0, 0.0]]
STUDENT_Q = [[1.0, 2.0],
             [-1.0, 1.0]]
STUDENT_K = [[1.0, 0.0],
             [0.0, 1.0]]


def _hand_relation_loss() -> float:
    """The Q-K relation loss of the tensors above, on paper."""
    r3 = math.sqrt(3.0)
    # Teacher head 1 (columns 0-2): q0 = (1,0,2), q1 = (0,1,0); k0 = (1,1,0), k1 = (0,0,1)
    #   q0·k0 = 1, q0·k1 = 2;  q1·k0 = 1, q1·k1 = 0                 -> rows (1, 2)/√3 and (1, 0)/√3
    # Teacher head 2 (columns 3-5): q0 = (0,1,0), q1 = (1,0,0); k0 = (0,0,2), k1 = (2,0,0)
    #   q0·k0 = 0, q0·k1 = 0;  q1·k0 = 0, q1·k1 = 2                 -> rows (0, 0) and (0, 2)/√3
    teacher = [_softmax([1 / r3, 2 / r3]), _softmax([1 / r3, 0.0]),  # head 1, query tokens 0 and 1
               _softmax([0.0, 0.0]), _softmax([0.0, 2 / r3])]  # head 2
    # Student head 1 (column 0): q = (1, -1), k = (1, 0)             -> rows (1, 0) and (-1, 0), /√1
    # Student head 2 (column 1): q = (2, 1),  k = (0, 1)             -> rows (0, 2) and (0, 1)
    student = [_softmax([1.0, 0.0]), _softmax([-1.0, 0.0]),
               _softmax([0.0, 2.0]), _softmax([0.0, 1.0])]
    # KL(teacher ‖ student) per (head, query token), mean over the 2 heads × 2 real tokens.
    return sum(_kl(t, s) for t, s in zip(teacher, student)) / 4


def test_relation_loss_matches_a_hand_computed_case():
    teacher = {"query": torch.tensor([TEACHER_Q]), "key": torch.tensor([TEACHER_K])}  # (1, 2, 6)
    student = {"query": torch.tensor([STUDENT_Q]), "key": torch.tensor([STUDENT_K])}  # (1, 2, 2)
    mask = torch.ones(1, 2, dtype=torch.bool)
    loss = relation_loss(teacher, student, mask, heads=2, pairs=(("query", "key"),))
    assert loss.item() == pytest.approx(_hand_relation_loss(), abs=1e-6)


def test_hand_computed_case_is_unchanged_by_a_padded_token():
    # A third, padded token with large Q/K values: as a key it would take most of each row's probability,
    # as a query it would add a KL row; masked, it must do neither.
    teacher = {"query": torch.tensor([TEACHER_Q + [[9.0, -4.0, 3.0, 7.0, 0.0, -6.0]]]),
               "key": torch.tensor([TEACHER_K + [[8.0, 5.0, -2.0, 6.0, 9.0, 1.0]]])}  # (1, 3, 6)
    student = {"query": torch.tensor([STUDENT_Q + [[-7.0, 5.0]]]),
               "key": torch.tensor([STUDENT_K + [[6.0, 8.0]]])}  # (1, 3, 2)
    mask = torch.tensor([[True, True, False]])
    loss = relation_loss(teacher, student, mask, heads=2, pairs=(("query", "key"),))
    assert loss.item() == pytest.approx(_hand_relation_loss(), abs=1e-6)


def test_zero_when_student_equals_teacher_and_positive_otherwise():
    mask = torch.ones(2, 7, dtype=torch.bool)
    teacher = _qkv(2, 7, 32, seed=0)
    assert relation_loss(teacher, teacher, mask, heads=4, pairs=ALL_PAIRS).item() == pytest.approx(0.0, abs=1e-6)
    assert relation_loss(teacher, _qkv(2, 7, 32, seed=1), mask, heads=4, pairs=ALL_PAIRS).item() > 0.01


def test_different_hidden_sizes_and_head_counts():
    mask = torch.ones(3, 5, dtype=torch.bool)
    teacher, student = _qkv(3, 5, 48, seed=0), _qkv(3, 5, 16, seed=1)
    loss = relation_loss(teacher, student, mask, heads=8)
    assert loss.item() > 0 and torch.isfinite(loss)
    with pytest.raises(ValueError, match="relation heads 5 do not divide hidden size 48"):
        relation_loss(teacher, student, mask, heads=5)


def test_padding_does_not_change_the_loss():
    teacher, student = _qkv(2, 6, 32, seed=0), _qkv(2, 6, 16, seed=1)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]], dtype=torch.bool)
    base = relation_loss(teacher, student, mask, heads=4, pairs=ALL_PAIRS)
    padded_t = {k: torch.where(mask.unsqueeze(-1), v[:, :6], torch.randn_like(v[:, :6]) * 50) for k, v in teacher.items()}
    padded_s = {k: torch.where(mask.unsqueeze(-1), v[:, :6], torch.randn_like(v[:, :6]) * 50) for k, v in student.items()}
    same = relation_loss(padded_t, padded_s, mask, heads=4, pairs=ALL_PAIRS)  # new values at padded positions
    assert same.item() == pytest.approx(base.item(), rel=1e-5)
    longer_mask = torch.cat([mask, torch.zeros(2, 3, dtype=torch.bool)], dim=1)
    longer_t = {k: torch.cat([v, torch.randn(2, 3, v.shape[-1])], dim=1) for k, v in teacher.items()}
    longer_s = {k: torch.cat([v, torch.randn(2, 3, v.shape[-1])], dim=1) for k, v in student.items()}
    longer = relation_loss(longer_t, longer_s, longer_mask, heads=4, pairs=ALL_PAIRS)  # three more pad columns
    assert longer.item() == pytest.approx(base.item(), rel=1e-5)


def test_gradient_reaches_the_student_only_and_is_finite_with_padding():
    teacher = _qkv(2, 6, 32, seed=0)
    student = {k: v.requires_grad_() for k, v in _qkv(2, 6, 16, seed=1).items()}
    mask = torch.tensor([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1]], dtype=torch.bool)
    relation_loss(teacher, student, mask, heads=4, pairs=ALL_PAIRS).backward()
    assert all(torch.isfinite(v.grad).all() and v.grad.abs().sum() > 0 for v in student.values())
    assert all(v.grad is None for v in teacher.values())
    assert student["query"].grad[0, 3:].abs().sum() == 0  # padded positions get no gradient
