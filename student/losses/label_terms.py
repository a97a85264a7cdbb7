"""The label terms every student trainer shares: `hard` on rows with a target, `soft` on rows with
teacher logits, each computed only when its weight is above 0.

Rows without teacher logits carry NaN there; rows without a hard target carry -100 (`NO_TARGET`).
"""

from __future__ import annotations

import torch

from tinykd.student.losses.hard import hard_label_loss
from tinykd.student.losses.soft import soft_label_loss


def label_terms(logits: torch.Tensor, targets: torch.Tensor | None, teacher_logits: torch.Tensor | None,
                weights: dict[str, float], temperature: float) -> dict[str, torch.Tensor]:
    """logits: (B, K); targets: (B,); teacher_logits: (B, K) -> {"hard"?, "soft"?: scalar}."""
    terms = {}
    if weights.get("hard", 0) > 0 and targets is not None:
        terms["hard"] = hard_label_loss(logits, targets)
    if weights.get("soft", 0) > 0 and teacher_logits is not None:
        taught = ~torch.isnan(teacher_logits).any(dim=1)  # (B,)
        terms["soft"] = (soft_label_loss(logits[taught], teacher_logits[taught], temperature)
                         if taught.any() else logits.sum() * 0.0)
    return terms
