"""Stage `search` (an experiment, run on demand): one worker of an Optuna study over `search.space`.

Each trial distills `search.student` with suggested values, compresses it with `search.backend` and
times it at the budget's batch and threads (`tinykd.search.objective`); the study maximizes accuracy and
minimizes latency (or maximizes QPS), or maximizes accuracy under the budget. Every worker started on
the same storage and study name joins the same study — `make search WORKERS=N` starts N on this machine,
and workers on other machines join through a PostgreSQL URL — and the study stops at `search.n_trials`
trials in all. A rerun continues the study: completed trials are kept, a trial whose worker was killed
is retried. When the study is finished the worker writes `runs/<task>/search/` (see `tinykd.search.outputs`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import optuna

from tinykd.artifacts import RunPaths, require
from tinykd.config import Config, SmallStudentSpec
from tinykd.errors import ConfigError
from tinykd.search.objective import Objective
from tinykd.search.outputs import SearchOutputs, write_outputs
from tinykd.search.space import hand_set
from tinykd.search.storage import StudyStorage, open_storage, shown_url
from tinykd.search.worker import WorkerLog, run_worker

DIRECTIONS = {"accuracy": "maximize", "latency_ms": "minimize", "qps": "maximize"}


@dataclass
class SearchResult:
    study_name: str
    log: WorkerLog
    outputs: SearchOutputs

    def summary(self) -> str:
        table, best = self.outputs.trials, self.outputs.best
        counts = ", ".join(f"{n} {s.lower()}" for s, n in sorted(table["state"].value_counts().items()))
        line = f"search: study {self.study_name}: {len(table)} trials ({counts}); this worker ran {len(self.log.ran)}"
        if best is not None:
            line += (f"; best trial {int(best['number'])}: accuracy {best['accuracy']:.2%}, {best['latency_ms']:.2f} ms "
                     f"p50, {best['qps']:.0f} qps; Pareto front of {len(self.outputs.front)}; {self.outputs.best_config}")
        return f"{line}. {self.outputs.baseline}"


def run(config: Config, paths: RunPaths) -> SearchResult:
    if config.search is None:
        raise ConfigError("the config has no search section (see README 'Search')")
    search = config.search
    _require_parent_artifacts(config, paths)
    storage = open_storage(config, paths)
    name = search.study_name or config.task.name
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the worker prints one line per trial instead
    study = _join_study(config, storage, name)
    log = run_worker(study, storage, name, Objective(config, paths), search.n_trials, search.timeout_s,
                     search.heartbeat_s)
    outputs = write_outputs(config, paths, study, shown_url(storage.url))
    return SearchResult(name, log, outputs)


def _require_parent_artifacts(config: Config, paths: RunPaths) -> None:
    """What every trial reads from the parent run, checked once here rather than failing every trial."""
    require(paths.data_summary, "data")
    spec = next(s for s in config.students if s.name == config.search.student)
    if not isinstance(spec, SmallStudentSpec):
        require(paths.teacher_model, "teacher")
    if not isinstance(spec, SmallStudentSpec) or spec.uses_teacher or any(
            p.path.endswith(("losses.soft", ".data")) for p in config.search.space):
        require(paths.label_dir / "summary.json", "label")


def _join_study(config: Config, storage: StudyStorage, name: str) -> optuna.Study:
    """Create the study or load it, under the lock; each joining worker gets its own sampler seed
    (`search.seed` + how many workers joined before), so two workers never sample the same sequence."""
    search = config.search
    space = [p.model_dump(mode="json") for p in search.space]
    with storage.lock(name):
        study = optuna.create_study(storage=storage.storage, study_name=name, load_if_exists=True,
                                    directions=[DIRECTIONS[o] for o in search.objectives])
        recorded = study.user_attrs
        if recorded.get("objectives", search.objectives) != search.objectives or recorded.get("space", space) != space:
            raise ConfigError(f"search.study_name: study '{name}' in {shown_url(storage.url)} was started with "
                              f"objectives {recorded.get('objectives')} and another search.space; set a new "
                              "search.study_name (or restore the old space) to continue")
        joined = recorded.get("workers_joined", 0)
        if search.baseline and not study.get_trials(deepcopy=False):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a hand-set value off the range's grid is run as written
                study.enqueue_trial(hand_set(config), user_attrs={"baseline": True})
        study.set_user_attr("objectives", search.objectives)
        study.set_user_attr("space", space)
        study.set_user_attr("workers_joined", joined + 1)
    return optuna.load_study(study_name=name, storage=storage.storage, sampler=_sampler(config, search.seed + joined),
                             pruner=_pruner(config))


def _constraint(trial: optuna.trial.FrozenTrial) -> list[float]:
    # A pruned trial was never timed: infeasible.
    return list(trial.user_attrs.get("constraint", [1.0, 1.0]))


def _sampler(config: Config, seed: int) -> optuna.samplers.BaseSampler:
    constraints = _constraint if config.search.constraint == "budget" else None
    if config.search.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, constraints_func=constraints)
    return optuna.samplers.TPESampler(seed=seed, constraints_func=constraints)


def _pruner(config: Config) -> optuna.pruners.BasePruner:
    """Optuna's median pruner for single-objective studies; multi-objective ones prune in `EpochReporter`."""
    search = config.search
    if search.pruner == "median" and len(search.objectives) == 1:
        return optuna.pruners.MedianPruner(n_startup_trials=search.pruner_startup_trials,
                                           n_warmup_steps=search.pruner_warmup_epochs)
    return optuna.pruners.NopPruner()
