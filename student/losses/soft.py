"""Soft-label distillation loss (Hinton et al., 2015).

    L_soft = T² · KL( softmax(t / T) ‖ softmax(s / T) )

averaged over the batch; t are teacher logits, s student logits. The T² keeps gradient magnitudes
comparable across temperatures.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def soft_label_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """student_logits, teacher_logits: (B, K) -> scalar."""
    log_student = F.log_softmax(student_logits / temperature, dim=-1)  # (B, K)
    log_teacher = F.log_softmax(teacher_logits / temperature, dim=-1)  # (B, K)
    return F.kl_div(log_student, log_teacher, log_target=True, reduction="batchmean") * temperature**2
