"""MiniLMv2 self-attention relation loss (Wang et al., 2021), as ERNIE-Tiny's TD1 uses it.

For one teacher layer and the student's last layer, the concatenated Q, K and V vectors (B, L, H) are
split into R *relation heads* of width d_r = H / R, so teacher and student may differ in hidden size
and head count; only R must divide both. For each configured pair (X, Y), e.g. Q-Q, K-K, V-V or Q-K:

    R_XY = softmax( X_r · Y_rᵀ / √d_r )                       (B, R, L, L), a row per query token
    L_XY = mean over batch, relation heads and real query tokens of KL( R_XY^teacher ‖ R_XY^student )

Padded tokens are masked out as keys (their probability is 0 in both distributions) and as queries
(their rows are not counted), so adding padding never changes the loss. The total is Σ_pairs L_XY.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch.nn import functional as F

if TYPE_CHECKING:
    from tinykd.student.losses import LossBatch

Pair = tuple[str, str]  # e.g. ("query", "key")
DEFAULT_PAIRS: tuple[Pair, ...] = (("query", "query"), ("key", "key"), ("value", "value"))


def relation_log_probs(x: torch.Tensor, y: torch.Tensor, heads: int, mask: torch.Tensor) -> torch.Tensor:
    """x, y: (B, L, H); mask: (B, L) bool, True = real token -> log R_XY: (B, R, L, L)."""
    batch, length, hidden = x.shape
    if hidden % heads:
        raise ValueError(f"relation heads {heads} do not divide hidden size {hidden}")
    width = hidden // heads
    xr = x.view(batch, length, heads, width).transpose(1, 2)  # (B, R, L, d_r)
    yr = y.view(batch, length, heads, width).transpose(1, 2)  # (B, R, L, d_r)
    scores = xr @ yr.transpose(-1, -2) / math.sqrt(width)  # (B, R, L, L)
    scores = scores.masked_fill(~mask[:, None, None, :], float("-inf"))  # padded keys get probability 0
    return F.log_softmax(scores.float(), dim=-1)


def relation_loss(teacher: dict[str, torch.Tensor], student: dict[str, torch.Tensor], mask: torch.Tensor,
                  heads: int, pairs: tuple[Pair, ...] = DEFAULT_PAIRS) -> torch.Tensor:
    """teacher/student: {"query"|"key"|"value": (B, L, H_t) / (B, L, H_s)}; mask: (B, L) -> scalar."""
    mask = mask.bool()
    real_queries = mask[:, None, :].expand(-1, heads, -1)  # (B, R, L)
    total = student[pairs[0][0]].new_zeros(())
    for x, y in pairs:
        log_t = relation_log_probs(teacher[x], teacher[y], heads, mask)  # (B, R, L, L)
        log_s = relation_log_probs(student[x], student[y], heads, mask)  # (B, R, L, L)
        # KL per query row. Padded keys have p = 0 in both; zeroing their log-probs keeps -inf - -inf out.
        keys = mask[:, None, None, :]  # (B, 1, 1, L)
        log_t, log_s = log_t.masked_fill(~keys, 0.0), log_s.masked_fill(~keys, 0.0)
        kl = (log_t.exp() * keys * (log_t - log_s)).sum(-1)  # (B, R, L)
        total = total + kl[real_queries].mean()
    return total


def term(batch: LossBatch) -> torch.Tensor:
    """The registered `relation` term on the batch's captured Q/K/V (teacher layer vs student last layer) -> scalar."""
    attention = batch.attention
    return relation_loss(attention.teacher, attention.student, attention.mask, attention.heads, attention.pairs)
