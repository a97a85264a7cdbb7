"""Soft-label distillation loss (Hinton et al., 2015).

    L_soft = T² · KL( softmax(t / T) ‖ softmax(s / T) )

averaged over the batch; t are teacher logits, s student logits. The T² keeps gradient magnitudes
comparable across temperatures. As a registered term it counts only the rows that have teacher logits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch.nn import functional as F

if TYPE_CHECKING:
    from tinykd.student.losses import LossBatch


def soft_label_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """student_logits, teacher_logits: (B, K) -> scalar."""
    log_student = F.log_softmax(student_logits / temperature, dim=-1)  # (B, K)
    log_teacher = F.log_softmax(teacher_logits / temperature, dim=-1)  # (B, K)
    return F.kl_div(log_student, log_teacher, log_target=True, reduction="batchmean") * temperature**2


def term(batch: LossBatch) -> torch.Tensor:
    """The registered `soft` term over the rows whose teacher logits (B, K) are not NaN -> scalar (a zero that
    keeps the graph when no row has them)."""
    taught = ~torch.isnan(batch.teacher_logits).any(dim=1)  # (B,)
    if not taught.any():
        return batch.logits.sum() * 0.0
    return soft_label_loss(batch.logits[taught], batch.teacher_logits[taught], batch.temperature)
