"""Bi-encoder tiny transformer students: the bi-encoder classifier (tinykd.teacher.bi_encoder) over a tiny
transformer built from teacher layers.

The encoder is what `build_tiny_transformer` makes from the teacher (same layer choice, slicing, vocabulary
pruning); the head is the MLP over [u, v, |u - v|, u * v]. Trained on the teacher's soft labels over gold and
sampled pairs (Augmented SBERT), whether the teacher is a cross-encoder or a bi-encoder (`teacher.shape`).
"""

from __future__ import annotations

import torch
from transformers import PreTrainedModel

from tinykd.student.models.tiny_transformer import build_tiny_transformer, encoder_config
from tinykd.teacher.bi_encoder import BiEncoderConfig, BiEncoderForSequenceClassification


def build_bi_encoder(teacher: PreTrainedModel, layers: int, hidden: int, heads: int, intermediate: int,
                     init: str = "teacher", teacher_layers: list[int] | None = None,
                     keep_tokens: list[int] | None = None, seed: int = 0) -> BiEncoderForSequenceClassification:
    """A bi-encoder whose encoder is the tiny transformer `build_tiny_transformer` makes from `teacher` (same
    layer choice, slicing and vocabulary pruning); the comparison head starts random."""
    cross = build_tiny_transformer(teacher, layers, hidden, heads, intermediate, init=init,
                                   teacher_layers=teacher_layers, keep_tokens=keep_tokens, seed=seed)
    config = BiEncoderConfig(encoder=encoder_config(cross.config), id2label=dict(cross.config.id2label),
                             label2id=dict(cross.config.label2id))
    torch.manual_seed(seed)
    model = BiEncoderForSequenceClassification(config)
    model.encoder.load_state_dict(cross.base_model.state_dict())
    return model


