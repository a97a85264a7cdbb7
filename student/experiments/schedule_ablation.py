"""Experiment `ablate-schedule`: what each part of the tiny-transformer recipe adds.

Trains `schedule_ablation.student` (a `kind: transformer` student) per seed through five built-in schedules,
each adding one thing to the one before (ERNIE-Tiny's ablation, on the user's own task):

    gold only          task_prediction on gold rows, cross-entropy only (plain fine-tuning)
    + soft labels      the same stage with the teacher's soft labels (TD2)
    + TD1 relations    a task_relation stage (MiniLMv2 relations) on gold rows first
    + augmented rows   both stages on gold + teacher-labelled augmented rows (data distillation)
    + general          a general-distillation stage on unlabeled text first

Epochs, learning rates, batch sizes and row caps come from the student's own schedule stages (defaults
where it has none). With `schedule_ablation.variants`, the experiment trains those named schedules instead, in
their order, each stage exactly as written (a stage without `data` takes the student's default), to compare
schedules at equal compute (temperature, the share of TD1, learning rates) over seeds.

A variant trains in `schedule_ablation/<slug>-seed<seed>/` (<slug>: its name in letters, digits, '.', '_' and
'-', with a short hash of the name when another variant's slug is the same); the variant equal to the student's
configured schedule at the student's seed reuses `students/<name>/`. Writes `schedule_ablation/runs.csv`,
`ablation.csv`, `ablation.md` and `summary.json` (variants in order, with `epochs`: the stages' epochs summed,
and `passes`: rows × epochs summed over the stages, the training rows seen), rewritten after every run so a
stopped experiment leaves a valid partial table; a rerun reuses every finished training.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from tinykd.artifacts import RunPaths, atomic_path, read_json, require, write_json
from tinykd.config import Config, ScheduleStage, TransformerLosses, TransformerStudentSpec, default_schedule
from tinykd.errors import ConfigError
from tinykd.student.trainers.transformer_distill import distill_transformer

RUN_COLUMNS = ["variant", "schedule", "epochs", "passes", "seed", "dev_accuracy", "test_accuracy", "train_seconds",
               "parameters"]
SLUG_LENGTH = 60  # characters of a variant name's slug before the `-seed<seed>` suffix (and a hash, if needed)


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
    has_augment = config.augment is not None
    if config.schedule_ablation.variants is not None:
        chosen = {variant.name: list(variant.schedule) for variant in config.schedule_ablation.variants}
    else:
        chosen = variants(spec, has_augment, config.schedule_ablation.general)
    stems = slugs(list(chosen))
    out, records = paths.root / "schedule_ablation", []
    table = pd.DataFrame()
    for seed in seeds:
        for variant, schedule in chosen.items():
            trained, directory = _variant_spec(spec, stems[variant], schedule, seed, out, has_augment)
            metrics = distill_transformer(config, trained, paths, out_dir=directory)
            resolved = [stage.model_copy(update={"data": spec.stage_data(stage, has_augment)}) for stage in schedule]
            records.append({"variant": variant, "schedule": describe(resolved),
                            "epochs": sum(stage.epochs for stage in schedule),
                            "passes": _passes(trained.schedule, directory), "seed": seed,
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


def slugs(names: list[str]) -> dict[str, str]:
    """Variant name -> its directory stem, unique among `names` (ignoring case): the name in letters, digits, '.',
    '_' and '-' ('+' reads 'plus', other characters become '-'), plus a short hash of the name when another name's
    stem is the same (or the name has no such characters)."""
    plain = {name: _slug(name) for name in names}
    stems = [stem.lower() for stem in plain.values()]
    chosen: dict[str, str] = {}
    for i, name in enumerate(names):
        stem = plain[name]
        if not stem or stems.count(stem.lower()) > 1:
            stem = "-".join(filter(None, [stem, hashlib.sha1(name.encode()).hexdigest()[:8]]))
        while stem.lower() in {taken.lower() for taken in chosen.values()}:  # a hashed stem equal to a plain one
            stem = f"{stem}-{i}"
        chosen[name] = stem
    return chosen


def _slug(name: str) -> str:
    words = re.sub(r"[^A-Za-z0-9_.-]+", "-", name.replace("+", " plus ")).strip("-.")
    return words[:SLUG_LENGTH].rstrip("-.")


def _passes(schedule: list[ScheduleStage], directory: Path) -> float:
    """Rows × epochs summed over the stages of a training in `directory` (from each stage's stage.json); NaN when
    a stage's record is missing."""
    total = 0.0
    for i, stage in enumerate(schedule):
        record = directory / "stages" / f"{i}-{stage.stage}" / "stage.json"
        if not record.is_file():
            return math.nan
        total += read_json(record)["rows"] * stage.epochs
    return total


def _own_stage(spec: TransformerStudentSpec, name: str) -> ScheduleStage:
    """The student's own settings for a stage kind (its first stage of that kind), else the default schedule's."""
    for stage in [*spec.schedule, *default_schedule()]:
        if stage.stage == name:
            return stage
    return ScheduleStage(stage=name)


def _variant_spec(spec: TransformerStudentSpec, slug: str, schedule: list[ScheduleStage], seed: int,
                  out: Path, has_augment: bool) -> tuple[TransformerStudentSpec, Path]:
    """The student to train for one variant (`slug`: its directory stem) and seed, and where; the configured
    student trains in place."""
    trained = spec.model_copy(update={"schedule": schedule, "seed": seed})
    if seed == spec.seed and _resolved(schedule, spec, has_augment) == _resolved(spec.schedule, spec, has_augment):
        return spec, out.parent / "students" / spec.name
    return trained.model_copy(update={"name": f"{spec.name}-{slug}-seed{seed}"}), out / f"{slug}-seed{seed}"


def _resolved(schedule: list[ScheduleStage], spec: TransformerStudentSpec, has_augment: bool) -> list[dict]:
    """A schedule with its defaults filled in (data, loss weights), so equal trainings compare equal."""
    return [stage.model_dump() | {"data": spec.stage_data(stage, has_augment), "losses": stage.loss_weights}
            for stage in schedule]


def _write(out: Path, per_run: pd.DataFrame, order: list[str], spec: TransformerStudentSpec, teacher: float,
           seeds: list[int]) -> pd.DataFrame:
    table = per_run.groupby("variant", sort=False).agg(
        schedule=("schedule", "first"), epochs=("epochs", "first"), passes=("passes", "mean"),
        seeds=("seed", "nunique"), test_mean=("test_accuracy", "mean"),
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
        f"Teacher: {teacher:.2%}. Epochs: summed over the stages; passes: rows × epochs summed over the stages "
        "(the training rows seen, for comparing schedules at equal compute).",
        "",
        "| variant | schedule | epochs | passes | seeds | test accuracy | of teacher | dev accuracy | train s |",
        "| --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: |",
    ]
    for r in table.itertuples():
        name, passes = r.variant.replace("|", "\\|"), "—" if pd.isna(r.passes) else f"{r.passes:,.0f}"
        lines.append(f"| {name} | {r.schedule} | {r.epochs:g} | {passes} | "
                     f"{r.seeds} | {r.test_mean:.2%} ± {r.test_std:.2%} | {r.of_teacher:.1%} | {r.dev_mean:.2%} | "
                     f"{r.train_seconds:,.0f} |")
    with atomic_path(out / "ablation.md") as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    rows = [row | {"passes": None if pd.isna(row["passes"]) else row["passes"]} for row in table.to_dict("records")]
    write_json(out / "summary.json", {"student": spec.name, "teacher_test_accuracy": teacher, "seeds": seeds,
                                      "rows": rows})  # valid JSON: an unknown `passes` is null, not NaN
    return table
