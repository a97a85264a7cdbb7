"""MiniLMv2 relation loss on random Q/K/V: zero for identical relations, masked padding, any head count."""

from __future__ import annotations

import pytest
import torch

from student.losses.relation import relation_loss

ALL_PAIRS = (("query", "query"), ("key", "key"), ("value", "value"), ("query", "key"))


def _qkv(batch: int, length: int, hidden: int, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {name: torch.randn(batch, length, hidden, generator=g) for name in ("query", "key", "value")}


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
