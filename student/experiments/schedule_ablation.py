"""Experiment `ablate-schedule`: what each part of the tiny-transformer recipe adds.

Trains `schedule_ablation.student` (a `kind: transformer` student) per seed through five schedules,
each adding one thing to the one before (ERNIE-Tiny's ablation, on the user's own task):

    gold only          task_prediction on gold rows, cross-entropy only (plain fine-tuning)
    + soft labels      the same stage with the teacher's soft labels (TD2)
    + TD1 relations    a task_relation stage (MiniLMv2 relations) on gold rows first
    + augmented rows   both stages on gold + teacher-labelled augmented rows (data distillation)
    + general          a general-distillation stage on unlabeled text first

Epochs, learning rates, batch sizes and row caps come from the student's own schedule stages (defaults
where it has none). The variant equal to the student's configured schedule reuses `students/<name>/`.
Writes `schedule_ablation/runs.csv`, `ablation.csv` and `ablation.md`, rewritten after every run so a
stopped experiment leaves a valid partial table; a rerun reuses every finished training.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from tinykd.artifacts import RunPaths, atomic_path, read_json, require, write_json
from tinykd.config import Config, ScheduleStage, TransformerLosses, TransformerStudentSpec, default_schedule
from tinykd.errors import ConfigError
from tinykd.student.trainers.transformer_distill import distill_transformer

RUN_COLUMNS = ["variant", "schedule", "seed", "dev_accuracy", "test_accuracy", "train_seconds", "parameters"]


@dataclass
class ScheduleAblationResult:
    table: pd.DataFrame

    def summary(self) -> str:
        parts = [f"{r.variant} {r.test_mean:.2%}" for r in self.table.itertuples()]
        return "ablate-schedule: test accuracy " + ", ".join(parts)


def variants(spec: TransformerStudentSpec, has_augment: bool,
             general: ScheduleStage | None = None) -> dict[str, list[ScheduleStage]]:
    """Variant name -> the schedule it trains, in table order (the augmented rows need an augment section)."""
    relation, prediction = _own_stage(spec, "task_relation"), _own_stage(spec, "task_prediction")
    general = general or _own_stage(spec, "general")
    weights = prediction.loss_weights
    hard_only = TransformerLosses(hard=weights["hard"] or 1.0)
    with_soft = TransformerLosses(**(weights | {"soft": weights["soft"] or 1.0}))
    gold_prediction = prediction.model_copy(update={"data": "gold", "losses": with_soft})
    chosen = {
        "gold only": [gold_prediction.model_copy(update={"losses": hard_only})],
        "+ soft labels": [gold_prediction],
        "+ TD1 relations": [relation.model_copy(update={"data": "gold"}), gold_prediction],
    }
    if has_augment:
        distilled = [relation.model_copy(update={"data": "distilled"}),
                     prediction.model_copy(update={"data": "distilled", "losses": with_soft})]
        chosen["+ augmented rows"] = distilled
        chosen["+ general"] = [general.model_copy(update={"data": "unlabeled"}), *distilled]
    return chosen


def run(config: Config, paths: RunPaths) -> ScheduleAblationResult:
    if config.schedule_ablation is None:
        raise ConfigError(f"{config.task.name}: the config has no schedule_ablation section (see docs/config.md)")
    spec = next(s for s in config.students if s.name == config.schedule_ablation.student)
    seeds = config.schedule_ablation.seeds or [spec.seed]
    teacher = read_json(require(paths.teacher_metrics, "teacher"))["test"]["accuracy"]
    chosen = variants(spec, config.augment is not None, config.schedule_ablation.general)
    out, records = paths.root / "schedule_ablation", []
    table = pd.DataFrame()
    for seed in seeds:
        for variant, schedule in chosen.items():
            trained, directory = _variant_spec(spec, variant, schedule, seed, out, config.augment is not None)
            metrics = distill_transformer(config, trained, paths, out_dir=directory)
            records.append({"variant": variant, "schedule": describe(schedule), "seed": seed,
                            "dev_accuracy": metrics["dev"]["accuracy"], "test_accuracy": metrics["test"]["accuracy"],
                            "train_seconds": metrics["train_seconds"], "parameters": metrics["parameters"]})
            table = _write(out, pd.DataFrame(records, columns=RUN_COLUMNS), list(chosen), spec, teacher, seeds)
    return ScheduleAblationResult(table)


def describe(schedule: list[ScheduleStage]) -> str:
    """e.g. 'task_relation(gold) -> task_prediction(gold; soft+hard)'."""
    def one(stage: ScheduleStage) -> str:
        terms = "+".join(name for name, weight in stage.loss_weights.items() if weight)
        return f"{stage.stage}({stage.data}; {terms})"
    return " -> ".join(one(stage) for stage in schedule)


def _own_stage(spec: TransformerStudentSpec, name: str) -> ScheduleStage:
    """The student's own settings for a stage kind (its first stage of that kind), else the default schedule's."""
    for stage in [*spec.schedule, *default_schedule()]:
        if stage.stage == name:
            return stage
    return ScheduleStage(stage=name)


def _variant_spec(spec: TransformerStudentSpec, variant: str, schedule: list[ScheduleStage], seed: int,
                  out: Path, has_augment: bool) -> tuple[TransformerStudentSpec, Path]:
    """The student to train for one variant and seed, and where; the configured student trains in place."""
    trained = spec.model_copy(update={"schedule": schedule, "seed": seed})
    if seed == spec.seed and _resolved(schedule, spec, has_augment) == _resolved(spec.schedule, spec, has_augment):
        return spec, out.parent / "students" / spec.name
    slug = variant.replace("+ ", "plus-").replace(" ", "-")
    return trained.model_copy(update={"name": f"{spec.name}-{slug}-seed{seed}"}), out / f"{slug}-seed{seed}"


def _resolved(schedule: list[ScheduleStage], spec: TransformerStudentSpec, has_augment: bool) -> list[dict]:
    """A schedule with its defaults filled in (data, loss weights), so equal trainings compare equal."""
    return [stage.model_dump() | {"data": spec.stage_data(stage, has_augment), "losses": stage.loss_weights}
            for stage in schedule]


def _write(out: Path, per_run: pd.DataFrame, order: list[str], spec: TransformerStudentSpec, teacher: float,
           seeds: list[int]) -> pd.DataFrame:
    table = per_run.groupby("variant", sort=False).agg(
        schedule=("schedule", "first"), seeds=("seed", "nunique"), test_mean=("test_accuracy", "mean"),
        test_std=("test_accuracy", "std"), dev_mean=("dev_accuracy", "mean"), train_seconds=("train_seconds", "mean"),
    ).reindex([v for v in order if v in set(per_run["variant"])]).reset_index()
    table["test_std"] = table["test_std"].fillna(0.0)
    table["of_teacher"] = table["test_mean"] / teacher
    with atomic_path(out / "runs.csv") as tmp:
        per_run.to_csv(tmp, index=False)
    with atomic_path(out / "ablation.csv") as tmp:
        table.to_csv(tmp, index=False)
    lines = [
        f"Schedule ablation for student `{spec.name}` ({spec.layers} layers, hidden {spec.hidden}, "
        f"{spec.heads} heads): test accuracy, mean ± std over the first `seeds` of {seeds}. "
        f"Teacher: {teacher:.2%}.",
        "",
        "| variant | schedule | seeds | test accuracy | of teacher | dev accuracy | train s |",
        "| --- | --- | ---: | --- | ---: | ---: | ---: |",
    ]
    for r in table.itertuples():
        lines.append(f"| {r.variant} | {r.schedule} | {r.seeds} | {r.test_mean:.2%} ± {r.test_std:.2%} | "
                     f"{r.of_teacher:.1%} | {r.dev_mean:.2%} | {r.train_seconds:,.0f} |")
    with atomic_path(out / "ablation.md") as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    write_json(out / "summary.json", {"student": spec.name, "teacher_test_accuracy": teacher, "seeds": seeds,
                                      "rows": table.to_dict("records")})
    return table
