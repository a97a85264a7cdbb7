"""The distillation losses pinned on hand-checkable cases."""

from __future__ import annotations

import math

import torch

from tinykd.student.losses.hard import NO_TARGET, hard_label_loss
from tinykd.student.losses.soft import soft_label_loss


def test_soft_loss_is_zero_for_equal_logits_and_matches_the_formula():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    assert soft_label_loss(logits, logits, 2.0).item() < 1e-7
    student, teacher = torch.tensor([[0.0, 0.0]]), torch.tensor([[math.log(3.0), 0.0]])  # teacher p = (0.75, 0.25)
    expected = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)  # KL(teacher || uniform), T = 1
    assert abs(soft_label_loss(student, teacher, 1.0).item() - expected) < 1e-6


def test_soft_loss_scales_with_temperature_squared():
    student, teacher = torch.tensor([[0.3, -0.2, 0.1]]), torch.tensor([[1.0, 0.5, -1.0]])
    t = 4.0
    p = torch.softmax(teacher / t, -1)
    kl = (p * (p.log() - torch.log_softmax(student / t, -1))).sum()
    assert abs(soft_label_loss(student, teacher, t).item() - (t * t * kl).item()) < 1e-6


def test_hard_loss_ignores_rows_without_target():
    logits = torch.tensor([[math.log(3.0), 0.0], [5.0, -5.0]])
    targets = torch.tensor([0, NO_TARGET])
    assert abs(hard_label_loss(logits, targets).item() - (-math.log(0.75))) < 1e-6
    none = hard_label_loss(logits, torch.tensor([NO_TARGET, NO_TARGET]))
    assert none.item() == 0.0
