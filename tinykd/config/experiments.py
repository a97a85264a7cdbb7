"""`compare`, `ablation`, `schedule_ablation`: the on-demand student experiments."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from tinykd.config.schedule import ScheduleStage
from tinykd.config.section import Section
from tinykd.config.training_data import TRAINING_DATA

TEACHER_DATA = tuple(name for name, kind in TRAINING_DATA.items() if kind.teacher_rows)  # what compare.data takes


class CompareConfig(Section):
    """Gold-only vs distilled twins of every distilled small student, over several seeds."""

    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    gold_epochs: int | None = Field(
        default=None, ge=1, description="epochs of the gold-only twins (default: the student's own): a distilled "
        "student sees ~multiplier times more rows per epoch, so it usually needs fewer epochs than its twin",
    )
    data: list[Literal[TEACHER_DATA]] | None = Field(
        default=None, min_length=1, description="the data ablation: each distilled student is trained once per "
        f"listed kind ({', '.join(TEACHER_DATA)}) against one gold-only twin, e.g. [augmented, pool, distilled] "
        "= augmentation only, pool only, both. Default: the student's own data",
    )

    @model_validator(mode="after")
    def _data_once(self) -> CompareConfig:
        if self.data is not None and len(set(self.data)) != len(self.data):
            raise ValueError(f"data lists a kind twice: {self.data}")
        return self


class AblationConfig(Section):
    """Which augmentation op helps: one distilled student trained on each op's rows alone and on all of them."""

    student: str = Field(description="name of a `data: distilled` entry in students")
    seeds: list[int] | None = Field(default=None, min_length=1, description="default: compare.seeds")


class ScheduleVariant(Section):
    """One named schedule the `ablate-schedule` experiment trains instead of its five built-in ones."""

    name: str = Field(description="the variant's row in the table (its directory is a slug of it)")
    schedule: list[ScheduleStage] = Field(
        min_length=1, description="the stages it trains, exactly as written (keys of a student's schedule stage)")

    @field_validator("name")
    @classmethod
    def _name_is_one_line(cls, name: str) -> str:
        if not name.strip():
            raise ValueError("a variant needs a name (its row in the table)")
        if "\n" in name or "\r" in name:
            raise ValueError("a variant name is one line")
        return name


class ScheduleAblationConfig(Section):
    """What each part of the tiny-transformer recipe adds: one transformer student, five built-in schedules (or
    the user's own `variants`)."""

    student: str = Field(description="name of a `kind: transformer` entry in students")
    seeds: list[int] | None = Field(default=None, min_length=1, description="default: the student's seed")
    general: ScheduleStage | None = Field(
        default=None, description="the general stage the '+ general' variant adds (stage: general); default: the "
        "student's own general stage, else 1 epoch over all of People's Daily")
    variants: list[ScheduleVariant] | None = Field(
        default=None, min_length=1, description="named schedules to train instead of the five built-in ones, in "
        "this order, each for every seed (compare schedules at equal compute); default: the built-in ones")

    @model_validator(mode="after")
    def _general_is_general(self) -> ScheduleAblationConfig:
        if self.general is not None and self.general.stage != "general":
            raise ValueError(f"general.stage must be 'general', not '{self.general.stage}'")
        return self

    @model_validator(mode="after")
    def _variant_names_unique(self) -> ScheduleAblationConfig:
        names = [variant.name for variant in self.variants or []]
        for j, name in enumerate(names):
            if name in names[:j]:
                first = names.index(name)
                raise ValueError(f"variants.{j}.name: duplicate variant name '{name}' (also variants.{first}.name)")
        return self
