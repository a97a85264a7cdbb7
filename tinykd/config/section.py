"""The base of every config section: unknown keys are errors and a loaded config is immutable."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """Base for every config section: unknown keys are errors and loaded configs are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)
