"""TextCNN student (Kim, 2014): 1-D convolutions of several widths, max over time, concatenated."""

from __future__ import annotations

import torch
from torch import nn

from tinykd.student.models.small_student import SmallStudent, SmallStudentConfig


class TextCnnStudent(SmallStudent):
    def __init__(self, config: SmallStudentConfig) -> None:
        super().__init__(config)
        self.convs = nn.ModuleList(
            nn.Conv1d(config.embedding_dim, config.num_filters, k, padding=k - 1) for k in config.kernel_sizes
        )
        self.build_head(config.num_filters * len(config.kernel_sizes))

    def encode(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.embedding(ids).transpose(1, 2)  # (B, E, L); [PAD] embeds to zeros, like conv padding
        lengths = mask.sum(1, keepdim=True)  # (B, 1); real tokens are a prefix
        pooled = []
        for conv in self.convs:
            h = torch.relu(conv(x))  # (B, F, L + k - 1): 'full' padding so even a 1-token text convolves
            # Window j covers tokens j-k+1..j: it touches a real token iff j < length + k - 1.
            positions = torch.arange(h.shape[-1], device=h.device)  # (L + k - 1,)
            real = positions < lengths + conv.kernel_size[0] - 1  # (B, L + k - 1)
            pooled.append(h.masked_fill(~real.unsqueeze(1), float("-inf")).max(dim=-1).values)  # (B, F)
        return torch.cat(pooled, dim=-1)  # (B, F * len(kernel_sizes))
