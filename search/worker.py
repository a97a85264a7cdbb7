"""One worker's trial loop: claim a trial under the study lock, run it with a heartbeat, record how it ended.

`study.optimize(n_trials=...)` counts a worker's own trials, so N workers would run N times the budget,
and a callback that stops at a total can only stop after the fact. Here the budget is the study's: under
the lock a worker counts the trials that use it — finished ones (complete, pruned, failed with a reason),
running ones and queued retries — and asks for a new trial only while that count is under
`search.n_trials`. A trial whose worker was killed is failed by the heartbeat check without a reason and
re-queued with the same parameters, so it gives its place in the budget to its retry. A worker leaves
when the budget is used and no trial is running or queued (it waits for other workers' running
trials, so every worker returns with the study finished), or when `search.timeout_s` has passed.
"""

from __future__ import annotations

import contextlib
import threading
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable, Iterator

import optuna
from optuna.trial import FrozenTrial, TrialState

from tinykd.errors import TinykdError
from tinykd.search.storage import StudyStorage

ERROR = "error"  # user attr: why a trial failed (set by this loop); absent on a trial whose worker died
KILLED = "worker stopped mid-trial (no heartbeat); retried with the same parameters"


def uses_budget(trial: FrozenTrial) -> bool:
    if trial.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING):
        return True
    return trial.state == TrialState.FAIL and ERROR in trial.user_attrs


@dataclass
class WorkerLog:
    ran: list[int] = field(default_factory=list)  # trial numbers this worker ran, in order
    states: dict[int, str] = field(default_factory=dict)


@contextlib.contextmanager
def heartbeat(storage: StudyStorage, trial_id: int, interval_s: int) -> Iterator[None]:
    """Record the trial's heartbeat every `interval_s` seconds while the block runs."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(interval_s):
            storage.storage.record_heartbeat(trial_id)

    thread = threading.Thread(target=beat, name=f"heartbeat-{trial_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def claim(study: optuna.Study, storage: StudyStorage, study_name: str, n_trials: int) -> optuna.Trial | None | bool:
    """Under the lock: fail stale trials (queueing their retries), then start a trial if the budget allows.

    Returns the trial, False when the study is finished, None when the budget is used but trials are still running.
    """
    with storage.lock(study_name):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # experimental-API and "heartbeat outside optimize" warnings
            optuna.storages.fail_stale_trials(study)
            trials = study.get_trials(deepcopy=False)
            waiting = any(t.state == TrialState.WAITING for t in trials)
            if sum(uses_budget(t) for t in trials) >= n_trials and not waiting:
                return None if any(t.state == TrialState.RUNNING for t in trials) else False
            trial = study.ask()  # a queued retry first, else a new trial
        # Recorded before the lock is released: a trial with no heartbeat at all would never be found stale.
        storage.storage.record_heartbeat(trial._trial_id)  # optuna has no public trial id accessor
    return trial


def run_worker(study: optuna.Study, storage: StudyStorage, study_name: str, objective: Callable,
               n_trials: int, timeout_s: float | None, heartbeat_s: int,
               progress: Callable[[str], None] = print) -> WorkerLog:
    log, started = WorkerLog(), time.monotonic()
    while timeout_s is None or time.monotonic() - started < timeout_s:
        trial = claim(study, storage, study_name, n_trials)
        if trial is False:
            break
        if trial is None:  # other workers' trials are running (or a killed one is not stale yet)
            time.sleep(min(heartbeat_s, 5))
            continue
        state, values = _run_one(study, storage, trial, objective, heartbeat_s)
        log.ran.append(trial.number)
        log.states[trial.number] = state.name
        frozen = storage.storage.get_trial(trial._trial_id)
        shown = f"values {[round(v, 4) for v in values]}" if values else frozen.user_attrs.get(ERROR, "")
        progress(f"search: trial {trial.number} {state.name.lower()} {shown}".rstrip())
    return log


def _run_one(study: optuna.Study, storage: StudyStorage, trial: optuna.Trial, objective: Callable,
             heartbeat_s: int) -> tuple[TrialState, list[float] | None]:
    """Run the objective; a failure is recorded with its reason and does not stop the worker. A
    KeyboardInterrupt leaves the trial running: the heartbeat check fails and re-queues it later. A trial another
    worker already failed as stale (its heartbeat was late: a starved machine) is left as that worker recorded it,
    and its retry runs as a new trial."""
    try:
        state, values = _run_objective(study, storage, trial, objective, heartbeat_s)
    except optuna.exceptions.UpdateFinishedTrialError:  # the objective wrote to the trial after it was failed
        state, values = TrialState.FAIL, None
    recorded = storage.storage.get_trial(trial._trial_id).state
    return (state, values) if recorded == state else (recorded, None)


def _run_objective(study: optuna.Study, storage: StudyStorage, trial: optuna.Trial, objective: Callable,
                   heartbeat_s: int) -> tuple[TrialState, list[float] | None]:
    with heartbeat(storage, trial._trial_id, heartbeat_s):
        try:
            values = list(objective(trial))
        except optuna.exceptions.UpdateFinishedTrialError:
            raise
        except optuna.TrialPruned as pruned:
            trial.set_user_attr("pruned", str(pruned))
            study.tell(trial, state=TrialState.PRUNED, skip_if_finished=True)
            return TrialState.PRUNED, None
        except Exception as err:  # noqa: BLE001  a bad trial must not kill the study
            reason = str(err) if isinstance(err, TinykdError) else f"{type(err).__name__}: {err}"
            trial.set_user_attr(ERROR, reason or type(err).__name__)
            study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
            return TrialState.FAIL, None
    study.tell(trial, values, skip_if_finished=True)
    return TrialState.COMPLETE, values
