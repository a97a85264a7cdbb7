"""Stage `compare`: does data distillation help? Each distilled small student against its gold-only twin.

For every student with teacher-labelled rows (`data` augmented, pool or distilled), trains the same architecture
per seed in `compare.seeds` on gold rows with hard labels only, and as configured (gold + its teacher-labelled
rows) — or, with `compare.data` (the data ablation), once per listed data kind against that one gold twin — and
writes `compare/comparison.csv` and `compare/comparison.md`: test and dev accuracy mean ± std per variant, the
gain, and the teacher's accuracy for reference. Dev is what should pick a data kind; test is what it gives.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from tinykd.artifacts import RunPaths, atomic_path, read_json, require, write_json
from tinykd.config import Config, LossWeights, SmallStudentSpec
from tinykd.student.stage import distill_one
from tinykd.student.trainers.small_trainer import TokenCache

RUN_COLUMNS = ["student", "kind", "variant", "seed", "augmented_rows", "dev_accuracy", "test_accuracy",
               "train_seconds"]
GOLD = "gold"


@dataclass
class CompareResult:
    table: pd.DataFrame

    def summary(self) -> str:
        parts = [f"{r.student} {r.gold_mean:.2%}->{r.distilled_mean:.2%} ({r.data})" for r in self.table.itertuples()]
        return "compare: gold->distilled test accuracy " + (", ".join(parts) if parts else "(no distilled students)")


def gold_twin(spec: SmallStudentSpec, epochs: int | None = None) -> SmallStudentSpec:
    """The same student trained on gold train rows with cross-entropy only: no teacher anywhere."""
    return spec.model_copy(update={"data": "gold", "losses": LossWeights(hard=1.0, soft=0.0),
                                   "epochs": epochs or spec.epochs})


def distilled_variants(spec: SmallStudentSpec, data: list[str] | None) -> dict[str, SmallStudentSpec]:
    """Data kind -> the distilled student trained on it: the student's own `data`, or each `compare.data` kind."""
    return {kind: spec.model_copy(update={"data": kind}) for kind in data or [spec.data]}


def seeded_runs(config: Config, paths: RunPaths, variants: dict[str, SmallStudentSpec], seeds: list[int],
                out_root: Path, cache: TokenCache, student: str) -> Iterator[list[dict]]:
    """Train every variant once per seed into `out_root/<student>-<variant>-seed<seed>/` (characters a
    directory name should not hold become '-'); yields each seed's records (one per variant) as soon as
    they exist, so callers can write partial tables."""
    for seed in seeds:
        records = []
        for variant, spec in variants.items():
            seeded = spec.model_copy(update={"seed": seed, "name": f"{student}-{variant}-seed{seed}"})
            directory = re.sub(r"[^A-Za-z0-9_.-]+", "-", seeded.name)  # variant labels may hold spaces
            metrics = distill_one(config, seeded, paths, cache, out_dir=out_root / directory)
            records.append({"student": student, "kind": spec.kind, "variant": variant, "seed": seed,
                            "augmented_rows": metrics["train_rows"]["augmented"],
                            "dev_accuracy": metrics["dev"]["accuracy"], "test_accuracy": metrics["test"]["accuracy"],
                            "train_seconds": metrics["train_seconds"]})
        yield records


def run(config: Config, paths: RunPaths) -> CompareResult:
    """Tables are rewritten after every seed of every student: a killed run leaves a valid partial table
    (`seeds` column), and the rerun reuses every finished training. A `--student` run keeps the earlier rows of
    the students it leaves out."""
    teacher = read_json(require(paths.teacher_metrics, "teacher"))["test"]["accuracy"]
    cache, out = TokenCache(), paths.root / "compare"
    earlier = pd.read_csv(out / "runs.csv") if (out / "runs.csv").is_file() else pd.DataFrame(columns=RUN_COLUMNS)
    runs = earlier[earlier["student"].isin(config.left_out_students())][RUN_COLUMNS].to_dict("records")
    table = _table(pd.DataFrame(runs, columns=RUN_COLUMNS), teacher)
    for spec in (s for s in config.small_students if s.training_data.teacher_rows):
        twins = {GOLD: gold_twin(spec, config.compare.gold_epochs), **distilled_variants(spec, config.compare.data)}
        for records in seeded_runs(config, paths, twins, config.compare.seeds, out, cache, spec.name):
            runs += records
            table = _write(out, pd.DataFrame(runs, columns=RUN_COLUMNS), teacher, config.compare.seeds)
    return CompareResult(table)


def _write(out: Path, per_run: pd.DataFrame, teacher: float, seeds: list[int]) -> pd.DataFrame:
    table = _table(per_run, teacher)
    with atomic_path(out / "runs.csv") as tmp:
        per_run.to_csv(tmp, index=False)
    with atomic_path(out / "comparison.csv") as tmp:
        table.to_csv(tmp, index=False)
    with atomic_path(out / "comparison.md") as tmp:
        tmp.write_text(_markdown(table, teacher, seeds), encoding="utf-8")
    write_json(out / "summary.json", {"teacher_test_accuracy": teacher, "seeds": seeds,
                                      "rows": table.to_dict("records")})
    return table


def _table(per_run: pd.DataFrame, teacher: float) -> pd.DataFrame:
    """One row per (student, data kind of a distilled variant) against that student's gold twin."""
    columns = ["student", "kind", "data", "gold_mean", "gold_std", "gold_dev", "distilled_mean", "distilled_std",
               "distilled_dev", "seeds", "gain", "teacher"]
    if per_run.empty:
        return pd.DataFrame(columns=columns)
    stats = per_run.groupby(["student", "kind", "variant"], sort=False).agg(
        mean=("test_accuracy", "mean"), std=("test_accuracy", "std"), dev=("dev_accuracy", "mean"),
        seeds=("seed", "nunique")).reset_index()
    stats["std"] = stats["std"].fillna(0.0)
    is_gold = stats["variant"] == GOLD
    gold = stats[is_gold].drop(columns=["variant", "seeds"]).rename(
        columns={"mean": "gold_mean", "std": "gold_std", "dev": "gold_dev"})
    distilled = stats[~is_gold].rename(columns={"variant": "data", "mean": "distilled_mean",
                                                "std": "distilled_std", "dev": "distilled_dev"})
    table = distilled.merge(gold, on=["student", "kind"], how="left")[columns[:-2]]
    table["gain"] = table["distilled_mean"] - table["gold_mean"]
    table["teacher"] = teacher
    return table


def _markdown(table: pd.DataFrame, teacher: float, seeds: list[int]) -> str:
    lines = [
        f"Test accuracy, mean ± std over the first `seeds` of {seeds} (fewer while the run is going or if it "
        f"was stopped); dev accuracy (mean) beside it, which is what should choose a data kind. Teacher: "
        f"{teacher:.2%}.",
        "",
        "| student | data | seeds | gold only | distilled | gain (points) | dev: gold → distilled |",
        "| --- | --- | ---: | --- | --- | ---: | --- |",
    ]
    for r in table.itertuples():
        lines.append(f"| {r.student} ({r.kind}) | {r.data} | {r.seeds} | {r.gold_mean:.2%} ± {r.gold_std:.2%} | "
                     f"{r.distilled_mean:.2%} ± {r.distilled_std:.2%} | {100 * r.gain:+.2f} | "
                     f"{r.gold_dev:.2%} → {r.distilled_dev:.2%} |")
    if len(table):
        lines += ["", f"Mean gain over {len(table)} rows (student × data): {100 * table['gain'].mean():+.2f} points."]
    return "\n".join(lines) + "\n"
