"""What a search leaves in `runs/<task>/search/`: every trial, the Pareto front, the best config, plots, a summary.

- `trials.csv`: one row per trial: number, state, the reason of a failed or pruned one, objectives and
  figures, and the value of every searched key (one column per key path);
- `pareto.csv`: the completed trials no other completed trial beats on both accuracy and speed (latency_ms,
  or qps when that is the objective), most accurate first;
- `best.yaml`: a complete, normal config: the task config as written (`${VAR:-default}` kept) with the best
  trial's student added as `<student>-best`, so `make distill CONFIG=runs/<task>/search/best.yaml` trains it
  beside the hand-set one (the upstream stages stay up to date). *Best* is the most accurate trial of the front, among those whose
  quick bench met the budget when there is a budget section and any did;
- `pareto_front.png`, `history.png`, `importances.png` (with at least 2 completed trials), `summary.md`.
Every file is written atomically; each worker rewrites them when it leaves.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import optuna
import pandas as pd
import yaml
from optuna.trial import TrialState

from tinykd.artifacts import RunPaths, atomic_path
from tinykd.benchmarks.pareto import pareto_front
from tinykd.config import Config
from tinykd.config_loading import expand_env
from tinykd.search.space import decode, with_values
from tinykd.search.worker import ERROR, KILLED

FIGURES = ("accuracy", "latency_ms", "qps", "p99_ms", "meets_budget", "dev_accuracy", "test_accuracy",
           "backend_test_accuracy", "size_mb", "train_seconds")


@dataclass
class SearchOutputs:
    trials: pd.DataFrame
    front: pd.DataFrame
    best: dict | None  # the best trial's row
    best_config: Path | None
    notes: list[str] = field(default_factory=list)
    baseline: str = ""  # how the front compares with the hand-set baseline trial


def trials_table(config: Config, study: optuna.Study) -> pd.DataFrame:
    trials = study.get_trials(deepcopy=False)
    retried_as = {t.system_attrs["failed_trial"]: t.number for t in trials if "failed_trial" in t.system_attrs}
    space = {p.path: p for p in config.search.space}
    records = []
    for t in trials:
        if t.state == TrialState.FAIL:
            reason = t.user_attrs.get(ERROR) or KILLED + (f" as trial {retried_as[t.number]}"
                                                          if t.number in retried_as else "")
        else:
            reason = t.user_attrs.get("pruned", "")
        values = t.user_attrs.get("values") or {path: decode(space[path], v) for path, v in t.params.items()
                                                 if path in space}
        duration = t.duration.total_seconds() if t.duration else None
        records.append({"number": t.number, "state": t.state.name, "reason": reason,
                        "baseline": bool(t.user_attrs.get("baseline", False)),
                        **{name: t.user_attrs.get(name) for name in FIGURES},
                        "duration_s": duration, **{path: _cell(values.get(path)) for path in space}})
    columns = ["number", "state", "reason", "baseline", *FIGURES, "duration_s", *space]
    return pd.DataFrame(records, columns=columns).sort_values("number").reset_index(drop=True)


def _cell(value):
    return str(value) if isinstance(value, (list, dict)) else value


def front_of(config: Config, table: pd.DataFrame) -> pd.DataFrame:
    done = table[table["state"] == "COMPLETE"].copy()
    if done.empty:
        return done
    maximize_qps = "qps" in config.search.objectives
    done["speed"] = done["qps"] if maximize_qps else -done["latency_ms"].astype(float)
    done["accuracy"] = done["accuracy"].astype(float)
    front = pareto_front(done, speed="speed", accuracy="accuracy")
    return front.drop(columns="speed").sort_values("accuracy", ascending=False)


def best_row(config: Config, front: pd.DataFrame) -> dict | None:
    if front.empty:
        return None
    candidates = front
    if config.budget is not None and front["meets_budget"].fillna(False).astype(bool).any():
        candidates = front[front["meets_budget"].fillna(False).astype(bool)]
    speed = "qps" if "qps" in config.search.objectives else "latency_ms"
    ordered = candidates.sort_values(["accuracy", speed], ascending=[False, speed == "latency_ms"])
    return ordered.iloc[0].to_dict()


def best_config(config: Config, study: optuna.Study, number: int) -> dict:
    """The config as plain data with the trial's student added as `<student>-best` (replacing an earlier one)."""
    search = config.search
    values = next(t for t in study.get_trials(deepcopy=False) if t.number == number).user_attrs["values"]
    trial_config = with_values(config, values)
    # The file as written keeps `${TINYKD_DATA:-...}` paths and typed labels; the new student is written in full.
    raw = config.as_written() or config.model_dump(mode="json")
    student = next(s for s in trial_config.model_dump(mode="json")["students"] if s["name"] == search.student)
    student = copy.deepcopy(student) | {"name": f"{search.student}-best"}
    raw["students"] = [s for s in raw.get("students", []) if s["name"] != student["name"]] + [student]
    for section in ("compress", "bench"):
        models = (raw.get(section) or {}).get("models")
        if models is not None and search.student in models and student["name"] not in models:
            models.append(student["name"])
    Config.model_validate(expand_env(raw))  # what we write must load
    return raw


def write_outputs(config: Config, paths: RunPaths, study: optuna.Study, storage_shown: str) -> SearchOutputs:
    out = paths.search_dir(config.search.study_name)
    out.mkdir(parents=True, exist_ok=True)
    table = trials_table(config, study)
    front = front_of(config, table)
    best = best_row(config, front)
    with atomic_path(out / "trials.csv") as tmp:
        table.to_csv(tmp, index=False)
    with atomic_path(out / "pareto.csv") as tmp:
        front.to_csv(tmp, index=False)
    best_path = None
    if best is not None:
        number = int(best["number"])
        raw = best_config(config, study, number)
        header = (f"# tinykd search: trial {number} of study '{study.study_name}' ({storage_shown}), student "
                  f"{config.search.student}-best: accuracy ({config.search.accuracy_split}) {best['accuracy']:.4f}, "
                  f"latency {best['latency_ms']:.2f} ms p50 / {best['p99_ms']:.2f} ms p99, {best['qps']:.0f} qps.\n"
                  f"# Reproduce: make distill CONFIG={out / 'best.yaml'}\n")
        best_path = out / "best.yaml"
        with atomic_path(best_path) as tmp:
            tmp.write_text(header + yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    notes = _plots(config, study, table, front, out)
    _summary(config, study, table, front, best, storage_shown, notes, out)
    return SearchOutputs(table, front, best, best_path, notes, baseline_line(config, table, front))


def baseline_line(config: Config, table: pd.DataFrame, front: pd.DataFrame) -> str:
    """Does the front hold a trial more accurate than the hand-set baseline at equal or better speed?"""
    base = table[table["baseline"] & (table["state"] == "COMPLETE")]
    if base.empty:
        return "Hand-set baseline: not run or not completed (search.baseline)."
    b = base.iloc[0]
    qps = "qps" in config.search.objectives
    faster = (front["qps"] >= b["qps"]) if qps else (front["latency_ms"] <= b["latency_ms"])
    better = front[(front["accuracy"] > b["accuracy"]) & faster & (front["number"] != b["number"])]
    head = (f"Hand-set baseline (trial {int(b['number'])}): accuracy {b['accuracy']:.4f}, p50 {b['latency_ms']:.2f} ms, "
            f"{b['qps']:.0f} qps. ")
    if better.empty:
        return head + "No trial of the front is more accurate at equal or better speed."
    listed = ", ".join(f"trial {int(r.number)} ({r.accuracy:.4f}, {r.latency_ms:.2f} ms)" for r in better.itertuples())
    return head + f"More accurate at equal or better speed: {listed}."


def _plots(config: Config, study: optuna.Study, table: pd.DataFrame, front: pd.DataFrame, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as optuna_plots

    notes = []
    done = table[table["state"] == "COMPLETE"]
    if done.empty:
        return ["no completed trial: no plots"]
    speed = "qps" if "qps" in config.search.objectives else "latency_ms"
    figure, axes = plt.subplots(figsize=(6, 4))
    axes.scatter(done[speed], done["accuracy"], s=18, color="#999999", label="completed trials")
    line = front.sort_values(speed)
    axes.plot(line[speed], line["accuracy"], "o--", color="#c0392b", label="Pareto front")
    for row in line.itertuples():
        axes.annotate(str(row.number), (getattr(row, speed), row.accuracy), fontsize=7, xytext=(3, 3),
                      textcoords="offset points")
    base = done[done["baseline"].astype(bool)]
    if len(base):
        axes.scatter(base[speed], base["accuracy"], s=90, marker="*", color="black", zorder=3,
                     label=f"hand-set (trial {int(base['number'].iat[0])})")
    # The budget's p99 line only where it sits near the trials: far off, it would squash them into a corner.
    if config.budget is not None and speed == "latency_ms" and config.budget.p99_ms <= 1.5 * done[speed].max():
        axes.axvline(config.budget.p99_ms, color="#2c3e50", linewidth=0.8, label="budget p99 (ms)")
    axes.set_xlabel("latency per call, p50 (ms)" if speed == "latency_ms" else "QPS")
    axes.set_ylabel(f"accuracy ({config.search.accuracy_split})")
    axes.set_title(f"{config.search.student} on {config.search.backend}")
    axes.legend(fontsize=8)
    _save(figure, out / "pareto_front.png")

    first = lambda trial: trial.values[0]  # noqa: E731  accuracy is always the first objective
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # optuna's matplotlib plots are experimental
        _save(optuna_plots.plot_optimization_history(study, target=first, target_name="accuracy").figure,
              out / "history.png")
        if len(done) < 2:
            notes.append("parameter importances need at least 2 completed trials: importances.png not written")
            (out / "importances.png").unlink(missing_ok=True)
        else:
            try:
                _save(optuna_plots.plot_param_importances(study, target=first, target_name="accuracy").figure,
                      out / "importances.png")
            except (RuntimeError, ValueError) as err:  # e.g. every completed trial has the same values
                notes.append(f"parameter importances not computed: {err}")
    return notes


def _save(figure, path: Path) -> None:
    import matplotlib.pyplot as plt

    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=110)
    plt.close(figure)


def _summary(config: Config, study: optuna.Study, table: pd.DataFrame, front: pd.DataFrame, best: dict | None,
             storage_shown: str, notes: list[str], out: Path) -> None:
    search = config.search
    counts = table["state"].value_counts().to_dict()
    lines = [f"# Search: {search.student} on {search.backend}", "",
             f"Study `{study.study_name}` in `{storage_shown}`: {len(table)} trials "
             f"({', '.join(f'{n} {s.lower()}' for s, n in sorted(counts.items()))}); objectives "
             f"{search.objectives} ({search.accuracy_split} accuracy); sampler {search.sampler}, pruner {search.pruner}.",
             ""]
    if best is not None:
        lines += [f"Best: trial {int(best['number'])}, accuracy {best['accuracy']:.4f}, p50 {best['latency_ms']:.2f} ms, "
                  f"p99 {best['p99_ms']:.2f} ms, {best['qps']:.0f} qps; config `best.yaml` "
                  f"(student `{search.student}-best`).", ""]
    lines += [baseline_line(config, table, front), ""]
    shown = front[["number", "accuracy", "latency_ms", "p99_ms", "qps", "test_accuracy", "backend_test_accuracy",
                   *[p.path for p in search.space]]] if len(front) else front
    lines += ["Pareto front:", "", shown.to_markdown(index=False, floatfmt=".4g") if len(front) else "(empty)", ""]
    lines += [f"![{name}]({name}.png)" for name in ("pareto_front", "history", "importances")
              if (out / f"{name}.png").is_file()]
    lines += [""] + [f"- {note}" for note in notes]
    with atomic_path(out / "summary.md") as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
