"""BOW student: the mean of the token embeddings, then an MLP (Baidu's data-distillation BOW)."""

from __future__ import annotations

import torch

from tinykd.student.models.small_student import SmallStudent, SmallStudentConfig


class BowStudent(SmallStudent):
    def __init__(self, config: SmallStudentConfig) -> None:
        super().__init__(config)
        self.build_head(config.embedding_dim)

    def encode(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        vectors = self.embedding(ids) * mask.unsqueeze(-1)  # (B, L, E), padding zeroed
        return vectors.sum(1) / mask.sum(1, keepdim=True).clamp(min=1)  # (B, E)
