"""What BOW, TextCNN and BiLSTM students share: one config class, the pair head, the HF plumbing.

Each student is a `PreTrainedModel` (so `save_pretrained`/`from_pretrained` work) whose subclass only
defines `encode(ids, mask) -> (B, D)`. A pair is encoded siamese-style, each text on its own, and
classified from [u, v, |u - v|, u * v] — the standard matching features. The config carries the task's
label names (`id2label`/`label2id`); their count is the head's width.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

from tinykd.teacher.bi_encoder import pair_features


class SmallStudentConfig(PretrainedConfig):
    model_type = "tinykd-small-student"

    def __init__(
        self,
        kind: str = "bow",
        vocab_size: int = 2,
        embedding_dim: int = 128,
        hidden_size: int = 128,
        num_labels: int | None = None,
        pair: bool = False,
        kernel_sizes: tuple[int, ...] = (3, 4, 5),
        num_filters: int = 128,
        pooling: str = "max",
        dropout: float = 0.1,
        **kwargs,
    ) -> None:
        self.kind = kind
        self.vocab_size = vocab_size
        self.embedding_dim = embedding_dim
        self.hidden_size = hidden_size
        self.pair = pair
        self.kernel_sizes = list(kernel_sizes)
        self.num_filters = num_filters
        self.pooling = pooling
        self.dropout = dropout
        # transformers saves no `num_labels`, only `id2label`: a reload passes the saved map and no count. Passing
        # a default count anyway would rebuild a 2-class head over a saved K-class one (the setter resets the map).
        if num_labels is not None and "id2label" not in kwargs:
            kwargs["num_labels"] = num_labels
        elif num_labels is not None and len(kwargs["id2label"]) != num_labels:
            raise ValueError(f"num_labels={num_labels} but id2label names {len(kwargs['id2label'])} labels")
        super().__init__(**kwargs)


class SmallStudent(PreTrainedModel):
    config_class = SmallStudentConfig
    base_model_prefix = "student"

    def __init__(self, config: SmallStudentConfig) -> None:
        super().__init__(config)
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_dim, padding_idx=0)
        self.dropout = nn.Dropout(config.dropout)

    def build_head(self, encoded_dim: int) -> None:
        """Called by subclasses once they know their encoding width."""
        features = 4 * encoded_dim if self.config.pair else encoded_dim
        self.head = nn.Sequential(
            nn.Linear(features, self.config.hidden_size), nn.ReLU(), nn.Dropout(self.config.dropout),
            nn.Linear(self.config.hidden_size, self.config.num_labels),
        )
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=0.1)
            with torch.no_grad():
                module.weight[0].zero_()  # [PAD]
        elif isinstance(module, (nn.Linear, nn.Conv1d)):
            nn.init.xavier_uniform_(module.weight)
            nn.init.zeros_(module.bias)

    def encode(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def embed(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, L) token ids of one text -> (B, D): what a pair model caches for a candidate set."""
        return self.encode(ids, mask.bool())

    def compare(self, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Pair models: embeddings (B, D) of each side -> logits (B, K); u (1, D) against v (C, D) broadcasts."""
        return self.head(self.dropout(pair_features(u, v)))  # (B, 4D) -> (B, K)

    def forward(
        self,
        input_ids: torch.Tensor,  # (B, L)
        attention_mask: torch.Tensor | None = None,  # (B, L), 1 = real token
        input_ids_b: torch.Tensor | None = None,  # (B, Lb), pairs only
        attention_mask_b: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> SequenceClassifierOutput:
        mask = attention_mask if attention_mask is not None else input_ids != 0
        u = self.embed(input_ids, mask)  # (B, D)
        if self.config.pair:
            if input_ids_b is None:
                raise ValueError("this student was built for text pairs: pass input_ids_b")
            mask_b = attention_mask_b if attention_mask_b is not None else input_ids_b != 0
            logits = self.compare(u, self.embed(input_ids_b, mask_b))  # (B, K)
        else:
            logits = self.head(self.dropout(u))  # (B, K)
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)
