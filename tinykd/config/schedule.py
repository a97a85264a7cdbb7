"""A tiny transformer's schedule: the stage kinds (each with its default losses and data, defined once here) and one
step of a schedule."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import Field, create_model

from tinykd.config.section import Section
from tinykd.config.training_data import TRAINING_DATA
from tinykd.loss_table import LOSSES

# One field per loss term (tinykd.loss_table), 0 by default: a stage's own defaults are its kind's (STAGE_KINDS).
TransformerLosses = create_model(
    "TransformerLosses", __base__=Section, __module__=__name__,
    __doc__="Named loss weights of one schedule stage; a term with weight 0 is not computed.",
    **{name: (float, Field(default=0.0, ge=0, description=loss.about)) for name, loss in LOSSES.items()},
)


@dataclass(frozen=True)
class StageKind:
    """What a schedule stage of this kind does unless its YAML says otherwise."""

    losses: dict[str, float]  # default weights (TransformerLosses keys); the others are 0
    data: str  # default rows (a TRAINING_DATA name): unlabeled, or distilled (gold when the config has no augment)
    about: str


# The stage kinds, defined once: `stage:` accepts exactly these names. A new kind is one entry here (and its data
# in the trainer, tinykd.student.trainers.transformer_distill).
STAGE_KINDS: dict[str, StageKind] = {
    "general": StageKind({"relation": 1.0}, "unlabeled", "task-agnostic relation distillation on general text"),
    "task_relation": StageKind({"relation": 1.0}, "distilled", "relation distillation on the task's rows"),
    "task_prediction": StageKind({"soft": 1.0, "hard": 1.0}, "distilled", "soft + hard labels on the task's rows"),
}
StageName = Literal[tuple(STAGE_KINDS)]


class ScheduleStage(Section):
    """One step of a transformer student's schedule; each warm-starts from the previous one."""

    stage: StageName = Field(description="; ".join(f"{name}: {kind.about}" for name, kind in STAGE_KINDS.items()))
    data: Literal[tuple(TRAINING_DATA)] | None = Field(
        default=None, description="; ".join(f"{name}: {kind.about}" for name, kind in TRAINING_DATA.items())
        + ". Default: unlabeled for general, else distilled (gold without augment)",
    )
    max_rows: int | None = Field(default=None, ge=1, description="a seeded random sample of at most this many rows")
    epochs: float = Field(default=1.0, gt=0)
    batch_size: int = Field(default=32, ge=1)
    learning_rate: float = Field(default=1e-4, gt=0, lt=1)
    weight_decay: float = Field(default=0.01, ge=0)
    warmup_ratio: float = Field(default=0.1, ge=0, lt=1)
    losses: TransformerLosses | None = Field(
        default=None, description="default: relation 1 for general/task_relation; soft 1 + hard 1 for task_prediction")
    temperature: float = Field(default=4.0, gt=0, description="softmax temperature of the soft loss; 4 by the schedule "
                               "ablation (docs/results.md): above T = 1 with and without a TD1 stage")

    @property
    def loss_weights(self) -> dict[str, float]:
        if self.losses is not None:
            return self.losses.model_dump()
        return TransformerLosses(**STAGE_KINDS[self.stage].losses).model_dump()


def default_schedule() -> list:
    """Soft + hard labels at T = 4 for 3 epochs at lr 1e-4, no TD1 stage: the dev-best of the schedule ablation at
    equal compute (`configs/sentiment_zh_schedules.yaml`, 2 seeds; docs/results.md), and the cheapest (TD1 needs a
    live teacher forward on every step)."""
    return [ScheduleStage(stage="task_prediction", epochs=3, learning_rate=1e-4)]
