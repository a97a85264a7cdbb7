"""The distillation losses, one row each: the module in student/losses that computes it, the input it needs, and
the facts the config needs about its weight. The config's loss weights (`LossWeights` for small students,
`TransformerLosses` for a tiny transformer's schedule stages) have exactly these names, and the trainers compute
every term through `tinykd.student.losses.loss_terms`, so nothing else names a term.

Adding a loss is one module and one row:
1. student/losses/<name>.py with `term(batch: LossBatch) -> Tensor` (a scalar); `LossBatch`
   (tinykd.student.losses) holds the student's logits, the targets, the teacher's logits, the temperature and,
   for attention terms, the teacher's and student's captured Q/K/V;
2. a `LossInfo` row below. `needs` names the `LossBatch` field the term reads: a batch without it (no targets,
   no teacher logits, or no Q/K/V captured, as in evaluation) skips the term; a term that needs "attention" makes
   the transformer trainer capture Q/K/V while its weight is above 0. `small_default` None keeps the term out of
   the small students' config.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType


@dataclass(frozen=True)
class LossInfo:
    name: str
    module: str  # the dotted module in student/losses whose `term(batch)` computes it
    needs: str  # the LossBatch input it reads: "targets", "teacher_logits" or "attention"
    about: str  # what its weight's config key shows
    small_default: float | None  # a small student's weight when its YAML omits it; None: not for small students

    def load_module(self) -> ModuleType:
        return importlib.import_module(self.module)


LOSSES: dict[str, LossInfo] = {loss.name: loss for loss in (
    LossInfo("relation", "tinykd.student.losses.relation", "attention",
             "MiniLMv2 relation KL (teacher layer -> student last layer)", None),
    LossInfo("soft", "tinykd.student.losses.soft", "teacher_logits",
             "T² · KL to the teacher's softened distribution", 0.0),
    LossInfo("hard", "tinykd.student.losses.hard", "targets",
             "CE on gold labels (teacher argmax on augmented rows)", 1.0),
)}
