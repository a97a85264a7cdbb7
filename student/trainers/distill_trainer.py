"""HF `Trainer` with a distillation loss: Σ weight · term over the registered loss terms (`relation`, `soft`, `hard`;
tinykd.loss_table), computed by `tinykd.student.losses.loss_terms`.

Only `compute_loss` changes, so mixed precision, gradient accumulation, checkpoints, resume and
multi-process training (`torchrun`, DDP) are the Trainer's own. The teacher is frozen: `eval()`,
`requires_grad_(False)`, run under `no_grad`, and it is not `self.model`, so the optimizer never sees it.

Batches carry the student's inputs plus `labels` (class id, or -100 where a row teaches no hard label)
and `teacher_logits` (B, K; NaN rows where there are none). With a pruned student vocabulary the
teacher's ids are recovered through `token_map` (student id -> teacher id): both tokenize identically.
Q/K/V are captured (teacher layer and student last layer) only while training with a term that needs attention.
A bi-encoder reads each text of a pair alone, so the teacher's relations it learns are the teacher's over each
text alone too (the relation loss per side): the teacher reads both sides stacked along the batch, and the
student's two captures are stacked the same way, each padded to one length (the loss ignores padding).
Each term's running mean is logged by name next to the Trainer's `loss`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import torch
from torch.nn import functional as F
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from tinykd.hf_training import ResumableTrainer
from tinykd.student.losses import AttentionInputs, LossBatch, loss_terms, terms_needing
from tinykd.student.losses.hard import NO_TARGET
from tinykd.student.losses.relation import DEFAULT_PAIRS, Pair
from tinykd.student.trainers.qkv_capture import capture_qkv
from tinykd.teacher.encoding import SIDE_B, pad_features


@dataclass(frozen=True)
class LossSettings:
    weights: dict[str, float]  # loss term (tinykd.loss_table: "relation" | "soft" | "hard") -> weight; 0 = not computed
    temperature: float = 1.0
    relation_heads: int = 12
    relation_pairs: tuple[Pair, ...] = DEFAULT_PAIRS
    teacher_layer: int = -1


@dataclass
class DistillationCollator:
    """Pads a list of feature dicts (each side of a bi-encoder's pair apart); carries `labels` and `teacher_logits`
    through as tensors."""

    tokenizer: PreTrainedTokenizerBase
    num_labels: int

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        batch = pad_features(self.tokenizer, features)
        batch["labels"] = torch.tensor([f.get("labels", NO_TARGET) for f in features], dtype=torch.long)
        nan = [float("nan")] * self.num_labels
        batch["teacher_logits"] = torch.tensor([f.get("teacher_logits") or nan for f in features], dtype=torch.float32)
        return batch


class DistillationTrainer(ResumableTrainer):
    def __init__(self, *args, teacher: PreTrainedModel | None, losses: LossSettings,
                 token_map: torch.Tensor | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        attending = terms_needing("attention", losses.weights)
        if attending and teacher is None:
            raise ValueError(f"the {' and '.join(attending)} loss needs a teacher model")
        self.teacher = teacher.to(self.args.device).eval().requires_grad_(False) if teacher is not None else None
        self.losses = losses
        self.token_map = token_map.to(self.args.device) if token_map is not None else None
        self._term_sums: dict[str, float] = defaultdict(float)
        self._term_batches = 0

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = dict(inputs)
        labels = inputs.pop("labels", None)  # (B,)
        teacher_logits = inputs.pop("teacher_logits", None)  # (B, K)
        weights, attention = self.losses.weights, None
        if terms_needing("attention", weights) and model.training:
            outputs, attention = self._forward_with_attention(model, inputs)
        else:
            outputs = model(**inputs)
        logits = outputs.logits  # (B, K)
        terms = loss_terms(weights, LossBatch(logits, labels, teacher_logits, self.losses.temperature, attention))
        loss = sum((weights[name] * term for name, term in terms.items()), logits.sum() * 0.0)
        if model.training:
            for name, term in terms.items():
                self._term_sums[name] += term.detach().item()
            self._term_batches += 1
        return (loss, outputs) if return_outputs else loss

    def _forward_with_attention(self, model, inputs: dict[str, torch.Tensor]):
        """The student's forward, and the teacher's and student's Q/K/V on the same texts for the attention terms."""
        sides = [("input_ids", "attention_mask")]
        if "input_ids" + SIDE_B in inputs:  # a bi-encoder: each text alone, for the teacher too
            sides.append(("input_ids" + SIDE_B, "attention_mask" + SIDE_B))
            teacher_inputs = {"input_ids": _stack([inputs[ids] for ids, _ in sides]),  # (2B, L)
                              "attention_mask": _stack([inputs[mask] for _, mask in sides])}
        else:
            teacher_inputs = dict(inputs)
        if self.token_map is not None:
            teacher_inputs["input_ids"] = self.token_map[teacher_inputs["input_ids"]]
        inner = self.accelerator.unwrap_model(model)  # hooks go on the model inside DDP; forward stays wrapped
        with capture_qkv(self.teacher, self.losses.teacher_layer) as t, capture_qkv(inner, -1) as s:
            with torch.no_grad():
                self.teacher(**teacher_inputs)
            outputs = model(**inputs)
        if len(s) != len(sides):
            raise RuntimeError(f"{type(inner).__name__} ran its last layer {len(s)} times for {len(sides)} "
                               "text(s) per row")
        student = {name: _stack([call[name] for call in s]) for name in s[0]}  # (B or 2B, L, H_s)
        mask = _stack([inputs[mask] for _, mask in sides])  # (B or 2B, L)
        return outputs, AttentionInputs(t[0], student, mask, self.losses.relation_heads, self.losses.relation_pairs)

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        if self._term_batches and "loss" in logs:  # a training log line: add each term's mean since the last one
            logs.update({f"loss_{name}": round(total / self._term_batches, 6) for name, total in self._term_sums.items()})
            self._term_sums.clear()
            self._term_batches = 0
        super().log(logs, *args, **kwargs)


def _stack(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Tensors (B, L_i, ...) -> (n·B, max L_i, ...): padded with zeros at the end of dim 1, stacked along the batch.
    Padded positions are masked (their token ids and projections never reach the relation loss)."""
    length = max(t.shape[1] for t in tensors)
    padded = [F.pad(t, (0, 0) * (t.dim() - 2) + (0, length - t.shape[1])) for t in tensors]
    return torch.cat(padded) if len(padded) > 1 else padded[0]
