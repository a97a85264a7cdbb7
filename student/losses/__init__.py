"""Distillation losses, one per module, each registered in `tinykd.loss_table`; the trainers combine them by the
config's named weights through `loss_terms`.

A loss module provides `term(batch: LossBatch) -> Tensor` (a scalar); `loss_terms` computes every registered term
whose weight is above 0 and whose input (`LossInfo.needs`: targets, teacher logits or attention) the batch has.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tinykd import loss_table


@dataclass(frozen=True)
class AttentionInputs:
    """What an attention term reads: one teacher layer's and the student's last layer's Q/K/V projections."""

    teacher: dict[str, torch.Tensor]  # {"query"|"key"|"value": (B, L, H_t)}
    student: dict[str, torch.Tensor]  # {"query"|"key"|"value": (B, L, H_s)}
    mask: torch.Tensor  # (B, L): 1 = real token, 0 = padding
    heads: int  # relation heads R; must divide H_t and H_s
    pairs: tuple[tuple[str, str], ...]  # e.g. (("query", "query"), ("key", "key"), ("value", "value"))


@dataclass(frozen=True)
class LossBatch:
    """One batch's loss inputs. An input a batch lacks is None, and every term that needs it is skipped."""

    logits: torch.Tensor  # (B, K) the student's
    targets: torch.Tensor | None = None  # (B,) class ids; NO_TARGET (-100) where a row has no hard target
    teacher_logits: torch.Tensor | None = None  # (B, K); a NaN row where a row has no teacher logits
    temperature: float = 1.0
    attention: AttentionInputs | None = None  # captured Q/K/V (training with an attention term only)


def terms_needing(needs: str, weights: dict[str, float]) -> list[str]:
    """The registered terms with weight above 0 that read the `needs` input ("attention", ...)."""
    return [name for name, loss in loss_table.LOSSES.items() if loss.needs == needs and weights.get(name, 0) > 0]


def loss_terms(weights: dict[str, float], batch: LossBatch) -> dict[str, torch.Tensor]:
    """weights: term name -> weight (absent or 0: not computed) -> {name: scalar} in the table's order, for each
    registered term with weight above 0 whose input the batch has."""
    terms = {}
    for name, loss in loss_table.LOSSES.items():
        if weights.get(name, 0) > 0 and getattr(batch, loss.needs) is not None:
            terms[name] = loss.load_module().term(batch)
    return terms
