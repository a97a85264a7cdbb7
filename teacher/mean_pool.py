"""A sequence classifier that mean-pools the encoder's token states: the head E5-style encoders expect.

`AutoModelForSequenceClassification` on a BERT checkpoint classifies from a `[CLS]` pooler that E5 never
trained (E5 was trained on mean-pooled embeddings), so early fine-tuning starts from a random view of the
text. This head starts from the embedding E5 was trained to produce. It is registered with the Auto
classes, so a saved teacher loads with `AutoModelForSequenceClassification.from_pretrained` once
`teacher` is imported.
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


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Token states (B, L, H) -> (B, H): their mean over the real tokens (mask (B, L), 1 = real)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, L, 1)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)  # (B, H)


class MeanPoolConfig(PretrainedConfig):
    model_type = "tinykd-mean-pool"
    sub_configs = {"encoder": AutoConfig}

    def __init__(self, encoder: PretrainedConfig | dict | None = None, classifier_dropout: float = 0.1,
                 **kwargs) -> None:
        if isinstance(encoder, dict):
            encoder = AutoConfig.for_model(**encoder)
        self.encoder = encoder
        self.classifier_dropout = classifier_dropout
        # The encoder's special-token ids at the top too: HF's Trainer reads them there and otherwise "aligns" them
        # from the tokenizer, with a warning at the start of every fine-tune.
        for name in ("pad_token_id", "bos_token_id", "eos_token_id"):
            if encoder is not None and kwargs.get(name) is None and getattr(encoder, name, None) is not None:
                kwargs[name] = getattr(encoder, name)
        super().__init__(**kwargs)


class MeanPoolForSequenceClassification(PreTrainedModel):
    config_class = MeanPoolConfig
    base_model_prefix = "encoder"

    def __init__(self, config: MeanPoolConfig) -> None:
        super().__init__(config)
        self.encoder = AutoModel.from_config(config.encoder)
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(config.encoder.hidden_size, config.num_labels)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        if module is getattr(self, "classifier", None):
            nn.init.normal_(module.weight, std=0.02)
            nn.init.zeros_(module.bias)

    @classmethod
    def from_encoder(cls, encoder_dir: str, **config_kwargs) -> MeanPoolForSequenceClassification:
        """A new classifier around the pretrained encoder in `encoder_dir` (random head)."""
        encoder = AutoModel.from_pretrained(encoder_dir)
        model = cls(MeanPoolConfig(encoder=encoder.config, **config_kwargs))
        model.encoder = encoder
        return model

    def get_input_embeddings(self) -> nn.Module:
        return self.encoder.get_input_embeddings()

    def forward(
        self,
        input_ids: torch.Tensor,  # (B, L)
        attention_mask: torch.Tensor | None = None,  # (B, L)
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs,
    ) -> SequenceClassifierOutput:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        extra = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state  # (B, L, H)
        logits = self.classifier(self.dropout(mean_pool(hidden, attention_mask)))  # (B, K)
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)


AutoConfig.register(MeanPoolConfig.model_type, MeanPoolConfig)
AutoModelForSequenceClassification.register(MeanPoolConfig, MeanPoolForSequenceClassification)
