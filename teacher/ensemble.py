"""Several fine-tuned teachers as one classifier whose logits are their weighted mean (`teacher.members`).

Students learn from the labels the ensemble gives (TextBrewer's MultiTeacherDistiller averages its teachers'
logits the same way). Saved with `save_pretrained` and registered with the Auto classes, the ensemble is the
teacher every later stage loads: `label` labels with it, `compress` and `bench` build and time it. The
members share one tokenizer (same base, same pruned vocabulary); they differ in seed and, optionally, learning
rate and epochs. Transformer students take layers and attention relations from the first member
(`structural_teacher`): a student has one encoder to copy and one to imitate.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import AutoConfig, AutoModelForSequenceClassification, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput


class EnsembleConfig(PretrainedConfig):
    model_type = "tinykd-ensemble"

    def __init__(self, members: list[PretrainedConfig | dict] | None = None, weights: list[float] | None = None,
                 **kwargs) -> None:
        members = [AutoConfig.for_model(**m) if isinstance(m, dict) else m for m in members or []]
        self.members = members
        self.weights = list(weights) if weights is not None else [1.0] * len(members)
        super().__init__(**kwargs)

    @property
    def encoder(self) -> PretrainedConfig | None:
        """The first member's encoder config: one layer's shape, which is what ONNX fusion and students need."""
        if not self.members:
            return None
        first = self.members[0]
        return getattr(first, "encoder", None) or first

    def to_dict(self) -> dict:
        out = super().to_dict()
        out["members"] = [m.to_dict() for m in self.members]
        return out


class EnsembleForSequenceClassification(PreTrainedModel):
    config_class = EnsembleConfig
    base_model_prefix = "members"

    def __init__(self, config: EnsembleConfig) -> None:
        super().__init__(config)
        self.members = nn.ModuleList(AutoModelForSequenceClassification.from_config(c) for c in config.members)
        self.post_init()

    @classmethod
    def from_members(cls, members: list[PreTrainedModel], weights: list[float]) -> EnsembleForSequenceClassification:
        first = members[0].config
        config = EnsembleConfig(members=[m.config for m in members], weights=weights, num_labels=first.num_labels,
                                id2label=first.id2label, label2id=first.label2id)
        model = cls(config)
        for slot, member in zip(model.members, members):
            slot.load_state_dict(member.state_dict())
        return model.eval()

    def _init_weights(self, module: nn.Module) -> None:
        pass  # every weight comes from a fine-tuned member

    def get_input_embeddings(self) -> nn.Module:
        return self.members[0].get_input_embeddings()

    def forward(
        self,
        input_ids: torch.Tensor,  # (B, L)
        attention_mask: torch.Tensor | None = None,  # (B, L)
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs,
    ) -> SequenceClassifierOutput:
        extra = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
        each = torch.stack([m(input_ids=input_ids, attention_mask=attention_mask, **extra).logits
                            for m in self.members])  # (M, B, K)
        weights = torch.tensor(self.config.weights, dtype=each.dtype, device=each.device)  # (M,)
        logits = (weights[:, None, None] * each).sum(0) / weights.sum()  # (B, K)
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)


def structural_teacher(model: PreTrainedModel) -> PreTrainedModel:
    """The single model a transformer student copies layers from and imitates: an ensemble's first member."""
    return model.members[0] if isinstance(model, EnsembleForSequenceClassification) else model


AutoConfig.register(EnsembleConfig.model_type, EnsembleConfig)
AutoModelForSequenceClassification.register(EnsembleConfig, EnsembleForSequenceClassification)
