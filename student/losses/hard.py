"""Hard-label loss: cross-entropy against gold labels, or against the teacher's argmax for unlabeled rows.

    L_hard = − mean_i log softmax(s_i)[y_i]     over rows with a target (y_i ≠ −100)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch.nn import functional as F

if TYPE_CHECKING:
    from tinykd.student.losses import LossBatch

NO_TARGET = -100


def hard_label_loss(student_logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """student_logits: (B, K), targets: (B,) class ids or NO_TARGET -> scalar (0 when no row has a target)."""
    if (targets == NO_TARGET).all():
        return student_logits.sum() * 0.0
    return F.cross_entropy(student_logits, targets, ignore_index=NO_TARGET)


def term(batch: LossBatch) -> torch.Tensor:
    """The registered `hard` term: logits (B, K) against targets (B,) -> scalar."""
    return hard_label_loss(batch.logits, batch.targets)
