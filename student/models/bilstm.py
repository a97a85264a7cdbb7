"""BiLSTM student: packed bidirectional LSTM over the real tokens, then max or mean pooling."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from tinykd.student.models.small_student import SmallStudent, SmallStudentConfig


class BiLstmStudent(SmallStudent):
    def __init__(self, config: SmallStudentConfig) -> None:
        super().__init__(config)
        self.lstm = nn.LSTM(config.embedding_dim, config.hidden_size, batch_first=True, bidirectional=True)
        self.build_head(2 * config.hidden_size)

    def encode(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        lengths = mask.sum(1).clamp(min=1).cpu()  # (B,)
        packed = pack_padded_sequence(self.embedding(ids), lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        h, _ = pad_packed_sequence(out, batch_first=True, total_length=ids.shape[1])  # (B, L, 2H)
        real = mask.unsqueeze(-1)  # (B, L, 1)
        if self.config.pooling == "mean":
            return (h * real).sum(1) / real.sum(1).clamp(min=1)  # (B, 2H)
        return h.masked_fill(~real, float("-inf")).max(dim=1).values  # (B, 2H)
