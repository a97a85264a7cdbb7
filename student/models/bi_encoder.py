"""Bi-encoder tiny transformer: each text of a pair embedded on its own, then compared.

A cross-encoder (the teacher) reads both texts together, so every (query, candidate) pair costs a forward
pass. A bi-encoder embeds each text alone — a tiny transformer built from teacher layers, mean-pooled like
E5 — and classifies the pair from [u, v, |u - v|, u * v] (Sentence-BERT's features plus the product), so a
candidate set is embedded once and cached, and a query costs one encode plus comparisons (`embed`,
`compare`). Trained on the cross-encoder's soft labels over gold and sampled pairs (Augmented SBERT).

Inputs are the siamese students' names: `input_ids`, `attention_mask` for one side, `input_ids_b`,
`attention_mask_b` for the other, so compress, bench and serving treat it like the siamese BOW/TextCNN. It is
registered with the Auto classes, so `AutoModelForSequenceClassification.from_pretrained` reloads it.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForSequenceClassification,
    PretrainedConfig,
    PreTrainedModel,
)
from transformers.modeling_outputs import SequenceClassifierOutput

from tinykd.student.models.small_student import pair_features
from tinykd.student.models.tiny_transformer import build_tiny_transformer, encoder_config
from tinykd.teacher.mean_pool import MeanPoolConfig, mean_pool


class BiEncoderConfig(MeanPoolConfig):
    """The mean-pool classifier's config (an encoder config inside, classifier dropout) and the head's width."""

    model_type = "tinykd-bi-encoder"

    def __init__(self, encoder: PretrainedConfig | dict | None = None, head_hidden: int | None = None,
                 classifier_dropout: float = 0.1, **kwargs) -> None:
        super().__init__(encoder, classifier_dropout, **kwargs)
        self.head_hidden = head_hidden or (self.encoder.hidden_size if self.encoder is not None else None)


class BiEncoderForSequenceClassification(PreTrainedModel):
    config_class = BiEncoderConfig
    base_model_prefix = "encoder"

    def __init__(self, config: BiEncoderConfig) -> None:
        super().__init__(config)
        self.encoder = AutoModel.from_config(config.encoder)
        hidden = config.encoder.hidden_size
        self.head = nn.Sequential(
            nn.Dropout(config.classifier_dropout), nn.Linear(4 * hidden, config.head_hidden), nn.ReLU(),
            nn.Dropout(config.classifier_dropout), nn.Linear(config.head_hidden, config.num_labels),
        )
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear) and any(module is m for m in getattr(self, "head", [])):
            nn.init.xavier_uniform_(module.weight)
            nn.init.zeros_(module.bias)

    def get_input_embeddings(self) -> nn.Module:
        return self.encoder.get_input_embeddings()

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, L) token ids of one side -> (B, H) mean of its token states."""
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (B, L, H)
        return mean_pool(hidden, attention_mask)  # (B, H)

    def compare(self, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Embeddings (B, H) of each side -> logits (B, K); u (1, H) against v (C, H) broadcasts."""
        return self.head(pair_features(u, v))  # (B, 4H) -> (B, K)

    def forward(
        self,
        input_ids: torch.Tensor,  # (B, L)
        attention_mask: torch.Tensor | None = None,  # (B, L), 1 = real token
        input_ids_b: torch.Tensor | None = None,  # (B, Lb)
        attention_mask_b: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs,
    ) -> SequenceClassifierOutput:
        if input_ids_b is None:
            raise ValueError("a bi-encoder classifies text pairs: pass input_ids_b")
        mask = attention_mask if attention_mask is not None else torch.ones_like(input_ids)
        mask_b = attention_mask_b if attention_mask_b is not None else torch.ones_like(input_ids_b)
        logits = self.compare(self.embed(input_ids, mask), self.embed(input_ids_b, mask_b))  # (B, K)
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)


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


AutoConfig.register(BiEncoderConfig.model_type, BiEncoderConfig)
AutoModelForSequenceClassification.register(BiEncoderConfig, BiEncoderForSequenceClassification)
