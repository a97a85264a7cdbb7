"""A bi-encoder classifier: each text of a pair embedded on its own, mean-pooled like E5, then compared.

A cross-encoder reads both texts together, so every (query, candidate) pair costs a forward pass. A bi-encoder
embeds each text alone, so a candidate set is embedded once and cached, and a query costs one encode plus
comparisons (`embed`, `compare`). Two heads:
- `mlp`: [u, v, |u - v|, u * v] (Sentence-BERT's features plus the product) into a small MLP; any label count.
  The tiny bi-encoder students use it (tinykd.student.models.bi_encoder builds them from teacher layers).
- `cosine`: two labels only, logit margin `scale * (cos(u, v) - shift)`: the comparison E5 itself was trained
  with, so a bi-encoder *teacher* starts from E5's own sense of "same meaning" (`teacher.shape: bi`; the stage
  fits scale and shift to the train pairs before fine-tuning). On LCQMC that sense is worth more than the
  cross-encoder's fine-tune (docs/results.md).

Inputs are the siamese students' names: `input_ids`, `attention_mask` for one side, `input_ids_b`,
`attention_mask_b` for the other, so compress, bench and serving treat it like the siamese BOW/TextCNN. It is
registered with the Auto classes, so `AutoModelForSequenceClassification.from_pretrained` reloads it.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

from tinykd.teacher.mean_pool import MeanPoolConfig, mean_pool

HEADS = ("mlp", "cosine")


def pair_features(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """[u, v, |u - v|, u * v] of two sides' embeddings (B, D) -> (B, 4D); a u of one row (1, D) stands for every row
    of v (a query against cached candidates)."""
    u = u.expand_as(v) if u.shape[0] == 1 else u
    return torch.cat([u, v, (u - v).abs(), u * v], dim=-1)


class BiEncoderConfig(MeanPoolConfig):
    """The mean-pool classifier's config (an encoder config inside, classifier dropout), the head kind and, for the
    MLP head, its width."""

    model_type = "tinykd-bi-encoder"

    def __init__(self, encoder: PretrainedConfig | dict | None = None, head_hidden: int | None = None,
                 classifier_dropout: float = 0.1, head: str = "mlp", **kwargs) -> None:
        super().__init__(encoder, classifier_dropout, **kwargs)
        if head not in HEADS:
            raise ValueError(f"bi-encoder head {head!r}: expected one of {HEADS}")
        self.head = head
        self.head_hidden = head_hidden or (self.encoder.hidden_size if self.encoder is not None else None)


class CosineHead(nn.Module):
    """Two-label logits from the cosine of two embeddings: margin z = scale * (cos - shift), logits [-z/2, z/2]."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(1.0))
        self.shift = nn.Parameter(torch.tensor(0.0))

    def forward(self, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        cosine = (nn.functional.normalize(u, dim=-1) * nn.functional.normalize(v, dim=-1)).sum(-1)  # (B,)
        half = 0.5 * self.scale * (cosine - self.shift)  # (B,)
        return torch.stack([-half, half], dim=-1)  # (B, 2)


class BiEncoderForSequenceClassification(PreTrainedModel):
    config_class = BiEncoderConfig
    base_model_prefix = "encoder"

    def __init__(self, config: BiEncoderConfig) -> None:
        super().__init__(config)
        self.encoder = AutoModel.from_config(config.encoder)
        hidden = config.encoder.hidden_size
        if config.head == "cosine":
            if config.num_labels != 2:
                raise ValueError(f"a cosine bi-encoder head gives two labels; this task has {config.num_labels}")
            self.head = CosineHead()
        else:
            self.head = nn.Sequential(
                nn.Dropout(config.classifier_dropout), nn.Linear(4 * hidden, config.head_hidden), nn.ReLU(),
                nn.Dropout(config.classifier_dropout), nn.Linear(config.head_hidden, config.num_labels),
            )
        self.post_init()

    @classmethod
    def from_encoder(cls, base: str, head: str = "mlp", **labels) -> BiEncoderForSequenceClassification:
        """A bi-encoder around the pretrained encoder in `base` (its head new), built as the mean-pool classifier's
        `from_encoder` builds one: the loaded encoder replaces the constructor's, its weights not copied over."""
        encoder = AutoModel.from_pretrained(base)
        model = cls(BiEncoderConfig(encoder=encoder.config, head=head, **labels))
        model.encoder = encoder
        return model

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear) and isinstance(getattr(self, "head", None), nn.Sequential) and any(
                module is m for m in self.head):
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
        if self.config.head == "cosine":
            return self.head(u, v)  # (B, 2)
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


def is_bi_encoder(model: PreTrainedModel) -> bool:
    """A model that reads the two texts of a pair apart (`encode_rows(..., sides=True)`)."""
    return isinstance(model, BiEncoderForSequenceClassification)


AutoConfig.register(BiEncoderConfig.model_type, BiEncoderConfig)
AutoModelForSequenceClassification.register(BiEncoderConfig, BiEncoderForSequenceClassification)
