"""Experiment `ablate`: which augmentation op carries data distillation?

Trains `ablation.student` (a distilled student) per seed on gold rows only, on gold + each op's
teacher-labelled rows alone (the unlabeled pool counts as op `pool`), on gold + all ops sampled down to one op's
row count (so the "all" row is not better merely for having three times the rows), and on gold + every augmented
row. Writes
`ablation/runs.csv`, `ablation/ablation.csv` and `ablation/ablation.md`.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from tinykd.artifacts import RunPaths, atomic_path, read_json, require, write_json
from tinykd.config import Config, SmallStudentSpec
from tinykd.errors import ConfigError
from tinykd.student.experiments.comparison import RUN_COLUMNS, gold_twin, seeded_runs
from tinykd.student.trainers.small_trainer import TokenCache


@dataclass
class AblationResult:
    table: pd.DataFrame

    def summary(self) -> str:
        parts = [f"{r.variant} {r.test_mean:.2%}" for r in self.table.itertuples()]
        return "ablate: test accuracy " + ", ".join(parts)


def variants(spec: SmallStudentSpec, op_names: list[str], rows_by_op: dict[str, int],
             gold_epochs: int | None = None) -> dict[str, SmallStudentSpec]:
    """Variant name -> the student spec it trains, in table order."""
    chosen = {"gold only": gold_twin(spec, gold_epochs)}
    for op in op_names:
        chosen[f"{op} only"] = spec.model_copy(update={"augment_ops": [op]})
    present = [rows_by_op.get(op, 0) for op in op_names]
    if len(op_names) > 1:
        equal = round(sum(present) / len(present))
        chosen[f"all ops, {equal} rows"] = spec.model_copy(update={"augment_ops": None, "max_augmented_rows": equal})
    chosen["all ops"] = spec.model_copy(update={"augment_ops": None, "max_augmented_rows": None})
    return chosen


def run(config: Config, paths: RunPaths) -> AblationResult:
    if config.ablation is None:
        raise ConfigError(f"{config.task.name}: the config has no ablation section (see docs/config.md)")
    spec = next(s for s in config.small_students if s.name == config.ablation.student)
    seeds = config.ablation.seeds or config.compare.seeds
    teacher = read_json(require(paths.teacher_metrics, "teacher"))["test"]["accuracy"]
    rows_by_op = read_json(require(paths.augment_summary, "augment"))["rows_by_op"]
    chosen = variants(spec, config.augment.row_ops, rows_by_op, config.compare.gold_epochs)
    out = paths.root / "ablation"
    records = [r for seed_records in seeded_runs(config, paths, chosen, seeds, out, TokenCache(), spec.name)
               for r in seed_records]
    per_run = pd.DataFrame(records, columns=RUN_COLUMNS)
    table = _table(per_run, list(chosen))
    with atomic_path(out / "runs.csv") as tmp:
        per_run.to_csv(tmp, index=False)
    with atomic_path(out / "ablation.csv") as tmp:
        table.to_csv(tmp, index=False)
    with atomic_path(out / "ablation.md") as tmp:
        tmp.write_text(_markdown(table, spec, teacher, seeds), encoding="utf-8")
    write_json(out / "summary.json", {"student": spec.name, "teacher_test_accuracy": teacher, "seeds": seeds,
                                      "rows": table.to_dict("records")})
    return AblationResult(table)


def _table(per_run: pd.DataFrame, order: list[str]) -> pd.DataFrame:
    table = per_run.groupby("variant", sort=False).agg(
        augmented_rows=("augmented_rows", "mean"), test_mean=("test_accuracy", "mean"),
        test_std=("test_accuracy", "std"), train_seconds=("train_seconds", "mean"),
    ).reindex(order).reset_index()
    table["test_std"] = table["test_std"].fillna(0.0)
    table["gain"] = table["test_mean"] - table.loc[table["variant"] == "gold only", "test_mean"].iloc[0]
    return table


def _markdown(table: pd.DataFrame, spec: SmallStudentSpec, teacher: float, seeds: list[int]) -> str:
    lines = [
        f"Augmentation-op ablation for student `{spec.name}` ({spec.kind}): test accuracy, mean ± std over "
        f"seeds {seeds}. Teacher: {teacher:.2%}.",
        "",
        "| training rows | augmented rows | test accuracy | gain over gold (points) | train s |",
        "| --- | ---: | --- | ---: | ---: |",
    ]
    for r in table.itertuples():
        lines.append(f"| {r.variant} | {r.augmented_rows:,.0f} | {r.test_mean:.2%} ± {r.test_std:.2%} | "
                     f"{100 * r.gain:+.2f} | {r.train_seconds:.0f} |")
    return "\n".join(lines) + "\n"
