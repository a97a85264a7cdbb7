"""`compare`, `ablation`, `schedule_ablation`: the on-demand student experiments."""

from __future__ import annotations

from pydantic import Field, model_validator

from tinykd.config.schedule import ScheduleStage
from tinykd.config.section import Section


class CompareConfig(Section):
    """Gold-only vs distilled twins of every distilled small student, over several seeds."""

    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    gold_epochs: int | None = Field(
        default=None, ge=1, description="epochs of the gold-only twins (default: the student's own): a distilled "
        "student sees ~multiplier times more rows per epoch, so it usually needs fewer epochs than its twin",
    )


class AblationConfig(Section):
    """Which augmentation op helps: one distilled student trained on each op's rows alone and on all of them."""

    student: str = Field(description="name of a `data: distilled` entry in students")
    seeds: list[int] | None = Field(default=None, min_length=1, description="default: compare.seeds")


class ScheduleAblationConfig(Section):
    """What each part of the tiny-transformer recipe adds: one transformer student, five schedules."""

    student: str = Field(description="name of a `kind: transformer` entry in students")
    seeds: list[int] | None = Field(default=None, min_length=1, description="default: the student's seed")
    general: ScheduleStage | None = Field(
        default=None, description="the general stage the '+ general' variant adds (stage: general); default: the "
        "student's own general stage, else 1 epoch over all of People's Daily")

    @model_validator(mode="after")
    def _general_is_general(self) -> ScheduleAblationConfig:
        if self.general is not None and self.general.stage != "general":
            raise ValueError(f"general.stage must be 'general', not '{self.general.stage}'")
        return self
