"""`search`: the Optuna study over one student's keys."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from tinykd.config.compress import Backend
from tinykd.config.section import Section

SPEED_OBJECTIVES = ("latency_ms", "qps")
STORAGE_SCHEMES = ("sqlite:///", "postgresql://", "postgresql+psycopg2://")


class SearchParam(Section):
    """One searched key: a typed range or a list of choices over a dotted config key path.

    `path` names a key of the searched student, by name or index: `students.bow.learning_rate`,
    `students.tiny.schedule.1.epochs`. `float` and `int` sample uniformly in [low, high] (`step` makes
    the grid discrete), `log_float` log-uniformly (learning rates, temperatures), `categorical` one of
    `choices` (lists such as kernel sizes are allowed as choices).
    """

    path: str = Field(pattern=r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$", description="dotted key path into the config")
    type: Literal["float", "log_float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    step: float | None = Field(default=None, gt=0, description="grid step of float/int ranges; default continuous / 1")
    choices: list[Any] | None = Field(default=None, description="the values of a categorical parameter")

    @model_validator(mode="after")
    def _range(self) -> SearchParam:
        if self.type == "categorical":
            if self.low is not None or self.high is not None or self.step is not None:
                raise ValueError(f"{self.path}: a categorical parameter takes choices, not low/high/step")
            if not self.choices:
                raise ValueError(f"{self.path}: empty choices (a categorical parameter needs at least one value)")
            if len({repr(c) for c in self.choices}) != len(self.choices):
                raise ValueError(f"{self.path}: duplicate choices in {self.choices}")
            return self
        if self.choices is not None:
            raise ValueError(f"{self.path}: choices belong to type categorical, not {self.type}")
        if self.low is None or self.high is None:
            raise ValueError(f"{self.path}: a {self.type} range needs low and high")
        if self.low >= self.high:
            raise ValueError(f"{self.path}: empty range: low {self.low:g} must be below high {self.high:g} "
                             "(to fix a key, set it in the config instead)")
        if self.type == "log_float" and (self.low <= 0 or self.step is not None):
            raise ValueError(f"{self.path}: a log_float range needs low > 0 and no step")
        if self.type == "int" and not all(float(v).is_integer() for v in (self.low, self.high, self.step or 1)):
            raise ValueError(f"{self.path}: an int range needs integer low, high and step")
        return self

    def probe_values(self) -> list[Any]:
        """Values that bound what the parameter can take: both ends of a range, or every choice."""
        if self.type == "categorical":
            return list(self.choices or [])
        if self.type == "int":
            return [int(self.low), int(self.high)]
        return [self.low, self.high]


class SearchBenchConfig(Section):
    """The quick bench of each trial: one cell (the budget's batch and threads, task.max_length)."""

    warmup_s: float = Field(default=0.5, ge=0)
    duration_s: float = Field(default=2.0, gt=0, description="timed seconds per repeat")
    repeats: int = Field(default=1, ge=1)


class SearchConfig(Section):
    """Optuna search over one student's knobs: each trial distills, compresses and quick-benches it.

    Trials reuse the parent run's data, teacher, augmented rows and teacher labels, so the space ranges
    over keys of `students.<student>` only.
    """

    student: str = Field(description="name of the student whose keys the space varies")
    backend: Backend = Field(default="onnx-int8-dynamic", description="the compress backend each trial is timed on")
    space: list[SearchParam] = Field(min_length=1)
    objectives: list[Literal["accuracy", "latency_ms", "qps"]] = Field(
        default_factory=lambda: ["accuracy", "latency_ms"],
        description="[accuracy] | [accuracy, latency_ms] | [accuracy, qps]; accuracy is maximized, latency_ms "
        "(p50 per call) minimized, qps maximized, at the budget's batch and threads")
    constraint: Literal["budget"] | None = Field(
        default=None, description="budget: trials whose quick bench misses budget.qps or budget.p99_ms are "
        "infeasible for the sampler (and never chosen as best)")
    accuracy_split: Literal["dev", "test"] = Field(
        default="dev", description="dev: the student's fp32 dev accuracy (keeps test out of the selection); "
        "test: the compressed model's test accuracy")
    n_trials: int = Field(default=50, ge=1, description="total across all workers of the study")
    timeout_s: float | None = Field(default=None, gt=0, description="a worker starts no trial after this many seconds")
    sampler: Literal["tpe", "nsga2"] = "tpe"
    pruner: Literal["median", "none"] = Field(
        default="median", description="median: stop a trial whose dev accuracy after an epoch is below the median "
        "of finished trials at that epoch")
    pruner_startup_trials: int = Field(default=5, ge=0, description="finished trials before the pruner acts")
    pruner_warmup_epochs: int = Field(default=1, ge=0, description="epochs of every trial that are never pruned")
    seed: int = 0
    baseline: bool = Field(
        default=True, description="trial 0 runs the searched keys at their values in the config as written (the "
        "hand-set student), so the front is compared with it under the same conditions")
    storage: str | None = Field(
        default=None, description="default sqlite:///runs/<task>/search/study.db; a postgresql:// URL lets "
        "several workers on several machines share one study")
    study_name: str | None = Field(default=None, description="default: the task name")
    heartbeat_s: int = Field(
        default=30, ge=1, description="a running trial's heartbeat interval; one silent for 2x this long (its "
        "worker was killed) is marked failed and retried with the same parameters")
    bench: SearchBenchConfig = SearchBenchConfig()
    keep_models: bool = Field(default=False, description="keep each trial's model and compressed builds "
                              "(default: only its metrics; the best config reproduces the model)")

    @model_validator(mode="after")
    def _consistent(self) -> SearchConfig:
        allowed = (["accuracy"], ["accuracy", "latency_ms"], ["accuracy", "qps"])
        if self.objectives not in allowed:
            raise ValueError(f"objectives {self.objectives}: expected one of {[list(a) for a in allowed]}")
        paths = [p.path for p in self.space]
        if len(set(paths)) != len(paths):
            raise ValueError(f"space: duplicate paths {sorted({p for p in paths if paths.count(p) > 1})}")
        if self.storage is not None and not self.storage.startswith(STORAGE_SCHEMES):
            raise ValueError(f"storage: expected a URL starting with one of {list(STORAGE_SCHEMES)}")
        return self
