"""`kill -9` of a search worker mid-trial, then a restart: the finished trials are kept and the study completes."""

from __future__ import annotations

import os
import signal

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from tests.search.tiny_search import QUICK_BENCH, parent_run, search_section
from tests.search.worker_processes import finish, start_worker, trials, wait_for

pytestmark = pytest.mark.slow
N_TRIALS = 4


def test_a_killed_worker_resumes_and_every_finished_trial_is_kept(tmp_path, sentiment_files):
    # Each trial times its build for 1.5 s, so a trial is running for a while after the first one completes.
    path, config, paths = parent_run(tmp_path, sentiment_files, search=search_section(
        n_trials=N_TRIALS, heartbeat_s=1, bench={**QUICK_BENCH, "duration_s": 1.5}))
    url, log = f"sqlite:///{(paths.root / 'search' / 'study.db').resolve()}", tmp_path / "worker.log"

    worker = start_worker(path, tmp_path / "runs", log)

    def finished_one_and_running_the_next():
        now = trials(url, "tiny")
        done = [t for t in now if t.state == TrialState.COMPLETE]
        # mid-trial with every key sampled (a kill between two suggestions leaves a retry to sample the rest)
        running = [t for t in now if t.state == TrialState.RUNNING and done and len(t.params) == len(done[0].params)]
        return (done, running) if done and running else None

    done, running = wait_for(finished_one_and_running_the_next, 300, "a completed and a running trial", worker, log)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    before = {t.number: t for t in trials(url, "tiny")}
    killed = running[0].number
    assert before[killed].state == TrialState.RUNNING  # the kill left it running in the storage
    completed = {n: t.values for n, t in before.items() if t.state == TrialState.COMPLETE}
    assert completed, "no completed trial before the kill"

    restarted = start_worker(path, tmp_path / "runs", log)
    finish(restarted, log)

    after = {t.number: t for t in trials(url, "tiny")}
    for number, values in completed.items():  # nothing finished was lost or rerun
        assert after[number].state == TrialState.COMPLETE and after[number].values == values
    assert after[killed].state == TrialState.FAIL and "error" not in after[killed].user_attrs
    retries = [t for t in after.values() if t.system_attrs.get("failed_trial") == killed]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    assert retries[0].params == before[killed].params  # the killed trial ran again with its parameters
    assert sum(t.state == TrialState.COMPLETE for t in after.values()) == N_TRIALS
    assert len(after) == N_TRIALS + 1  # the budget counts the retry, not the killed attempt

    table = pd.read_csv(paths.root / "search" / "trials.csv").set_index("number")
    assert table.loc[killed, "reason"] == ("worker stopped mid-trial (no heartbeat); retried with the same parameters "
                                           f"as trial {retries[0].number}")
    assert optuna.load_study(study_name="tiny", storage=url).user_attrs["workers_joined"] == 2
