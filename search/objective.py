"""What one trial does: the searched student distilled, compressed and timed by the same functions Make runs.

A trial gets its own run directory, `runs/<task>/search/trials/<number>/`, whose `data/`, `teacher/`,
`augment/` and `label/` are links to the parent run's: every trial learns from the same rows and teacher
logits, and no trial fine-tunes or labels anything. In it the trial trains `search.student` with the
suggested values (`distill`), builds `search.backend` (`compress`, which also judges the build on the
test split), and times it on one cell, the budget's batch and threads at `task.max_length` (the bench
harness). Dev accuracy after every epoch goes to the pruner, which may stop the trial early.
"""

from __future__ import annotations

import os
import shutil
import statistics
import traceback
from typing import Any

import optuna

from tinykd.artifacts import RunPaths, require, write_json
from tinykd.benchmarks.budget import judge
from tinykd.benchmarks.harness import Cell, request_sequence, time_cell
from tinykd.compress import stage as compress_stage
from tinykd.compress.backend import BACKENDS, load_runner
from tinykd.compress.model_source import ModelSource
from tinykd.config import Config, SearchConfig, TransformerStudentSpec
from tinykd.environment import environment
from tinykd.search.space import suggest, with_values
from tinykd.student.stage import distill_one
from tinykd.student.trainers.small_trainer import TokenCache

UPSTREAM = ("data", "teacher", "augment", "label")  # the parent run's artifacts every trial shares


def trials_root(paths: RunPaths, study: str | None = None) -> RunPaths:
    return RunPaths(paths.search_dir(study) / "trials")


def trial_paths(paths: RunPaths, number: int, study: str | None = None) -> RunPaths:
    """The trial's run directory, its upstream artifacts linked to the parent run's."""
    trial = RunPaths(trials_root(paths, study).root / str(number))
    trial.root.mkdir(parents=True, exist_ok=True)
    for name in UPSTREAM:
        parent, link = (paths.root / name).resolve(), trial.root / name
        if parent.exists() and not link.is_symlink():
            os.symlink(parent, link, target_is_directory=True)
    return trial


class EpochReporter:
    """Called by the student trainer after each dev evaluation: records it and stops the trial if the pruner says so.

    Optuna's pruners take intermediate values of single-objective studies only. With a speed objective
    too, the same median rule runs here on the dev accuracy each finished trial recorded by epoch (which
    can stop a small, fast, less accurate student: set `pruner: none` to keep every one to the end).
    """

    def __init__(self, trial: optuna.Trial, search: SearchConfig) -> None:
        self.trial, self.search = trial, search
        self.history: list[float] = []

    def __call__(self, dev_accuracy: float) -> None:
        step, dev_accuracy = len(self.history), float(dev_accuracy)
        self.history.append(dev_accuracy)
        self.trial.set_user_attr("dev_accuracy_by_epoch", self.history)
        if len(self.trial.study.directions) == 1:
            self.trial.report(dev_accuracy, step)
            prune = self.trial.should_prune()
        else:
            prune = self._below_median(step, dev_accuracy)
        if prune:
            raise optuna.TrialPruned(f"dev accuracy {dev_accuracy:.4f} after epoch {step + 1} is below the median "
                                     "of finished trials")

    def _below_median(self, step: int, dev_accuracy: float) -> bool:
        if self.search.pruner == "none" or step < self.search.pruner_warmup_epochs:
            return False
        finished = [t.user_attrs.get("dev_accuracy_by_epoch", []) for t in
                    self.trial.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))]
        at_step = [history[step] for history in finished if len(history) > step]
        if not at_step or len(at_step) < self.search.pruner_startup_trials:
            return False
        return dev_accuracy < statistics.median(at_step)


def quick_bench(config: Config, paths: RunPaths, model: str) -> dict[str, float]:
    """QPS and latency of `model` on `search.backend` at the budget's batch and threads (without a budget:
    batch 1 at the first of bench.threads), raw text in, labels out, as the bench stage times a cell: the
    bench's seeded request sequence (cut for this batch alone) in whole passes, at least `bench.min_calls` calls."""
    search = config.search
    batch = config.budget.batch if config.budget else 1
    threads = config.budget.threads if config.budget else config.bench.threads[0]
    source = ModelSource.of(model, paths, config.task.kind == "pair")
    runner = load_runner(search.backend, source, paths.compressed(model, search.backend), threads)
    cell = Cell(model, search.backend, batch, config.task.max_length, threads)
    figures = time_cell(source, runner, request_sequence(config, paths, [batch]), cell, search.bench.warmup_s,
                        search.bench.duration_s, search.bench.repeats, config.bench.min_calls).figures()
    return {"qps": figures["qps"], "latency_ms": figures["p50_ms"], "p99_ms": figures["p99_ms"],
            "batch": batch, "threads": threads}


class Objective:
    """The callable Optuna runs per trial; returns the values of `search.objectives`, in order."""

    def __init__(self, config: Config, paths: RunPaths) -> None:
        if config.search is None:
            raise ValueError("Objective needs a config with a search section")
        self.config, self.paths, self.search = config, paths, config.search
        self.tokens = TokenCache()  # word segmentation, shared by this worker's trials

    def __call__(self, trial: optuna.Trial) -> tuple[float, ...]:
        values = {param.path: suggest(trial, param) for param in self.search.space}
        trial.set_user_attr("values", values)
        paths = trial_paths(self.paths, trial.number, self.search.study_name)
        trial.set_user_attr("trial_dir", str(paths.root))
        try:
            figures = self.run_trial(trial, with_values(self.config, values), paths)
        except optuna.TrialPruned:
            raise
        except BaseException:
            (paths.root / "error.txt").write_text(traceback.format_exc(), encoding="utf-8")
            raise
        finally:
            if not self.search.keep_models:
                for heavy in (paths.student_dir(self.search.student) / "model",
                              paths.student_dir(self.search.student) / "stages", paths.root / "compressed"):
                    shutil.rmtree(heavy, ignore_errors=True)
        for key, value in figures.items():
            trial.set_user_attr(key, value)
        write_json(paths.root / "trial.json", {"number": trial.number, "values": values, **figures})
        return tuple(figures[name] for name in self.search.objectives)

    def run_trial(self, trial: optuna.Trial, config: Config, paths: RunPaths) -> dict[str, Any]:
        """distill -> compress -> quick bench in the trial's directory; the figures the trial records."""
        search = config.search
        require(paths.split("train"), "data")
        spec = next(s for s in config.students if s.name == search.student)
        reporter = EpochReporter(trial, search)
        if isinstance(spec, TransformerStudentSpec):
            from tinykd.student.trainers.transformer_distill import (
                distill_transformer,  # loads the teacher's stack only when needed
            )

            metrics = distill_transformer(config, spec, paths, on_epoch=reporter)
        else:
            metrics = distill_one(config, spec, paths, self.tokens, on_epoch=reporter)
        one_build = config.model_copy(update={"compress": config.compress.model_copy(
            update={"models": [spec.name], "backends": [search.backend]})})
        built = compress_stage.run(one_build, paths).table.set_index("backend").loc[search.backend]
        timing = quick_bench(config, paths, spec.name)
        figures = {
            "accuracy": metrics["dev"]["accuracy"] if search.accuracy_split == "dev" else float(built["accuracy"]),
            "dev_accuracy": metrics["dev"]["accuracy"],
            "test_accuracy": metrics["test"]["accuracy"],  # fp32
            "backend_test_accuracy": float(built["accuracy"]),
            "size_mb": float(built["size_mb"]),
            "train_seconds": metrics["train_seconds"],
            **timing,
        }
        if config.budget is not None:  # the bench stage's rule: p99 per call, and the fleet on budget.machines
            env = environment()
            verdict = judge({"model": spec.name, "backend": search.backend, "device": BACKENDS[search.backend].device,
                             "seq_len": config.task.max_length, "accuracy": figures["backend_test_accuracy"],
                             **timing}, config.budget, env["cores"], env["gpus"])
            figures["meets_budget"] = verdict.meets
            figures["constraint"] = verdict.constraints()  # Optuna's convention: feasible when every value is <= 0
        return figures
