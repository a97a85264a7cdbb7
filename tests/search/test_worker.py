"""One worker's trial loop against a trial another worker has already failed as stale."""

from __future__ import annotations

import optuna
from optuna.storages import RDBStorage
from optuna.trial import TrialState

from tinykd.search.storage import StudyStorage
from tinykd.search.worker import _run_one


def test_a_trial_failed_as_stale_by_another_worker_does_not_stop_this_one(tmp_path):
    """A starved worker whose heartbeat was late finds its trial failed by another worker's stale check: it records
    nothing over that and goes on (the retry is the other worker's new trial), instead of crashing."""
    url = f"sqlite:///{tmp_path / 'study.db'}"
    storage = StudyStorage(url, RDBStorage(url, heartbeat_interval=60, grace_period=120))
    study = optuna.create_study(study_name="s", storage=storage.storage)
    trial = study.ask()

    def failed_meanwhile(t: optuna.Trial) -> list[float]:
        storage.storage.set_trial_state_values(t._trial_id, TrialState.FAIL)  # what fail_stale_trials does
        return [0.5]

    def failed_then_raising(t: optuna.Trial) -> list[float]:
        storage.storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        t.set_user_attr("dev_accuracy", 0.5)  # the objective's own write to the finished trial
        return [0.5]

    assert _run_one(study, storage, trial, failed_meanwhile, heartbeat_s=60) == (TrialState.FAIL, None)
    second = study.ask()
    assert _run_one(study, storage, second, failed_then_raising, heartbeat_s=60) == (TrialState.FAIL, None)
    assert [t.state for t in study.get_trials()] == [TrialState.FAIL, TrialState.FAIL]
