"""Two worker processes on one study in a real PostgreSQL server: every trial lands once, none twice.

The server is PostgreSQL 15 from the Debian package (`initdb`, `pg_ctl`), started by the test on loopback and
a free port in a temporary directory; as root it runs as `nobody` (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from optuna.trial import TrialState

from tests.search.tiny_search import parent_run, search_section
from tests.search.worker_processes import finish, start_worker, trials

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
BINARIES = [Path(os.environ.get("TINYKD_PG_BIN", "/usr/local/bin")) / name for name in ("initdb", "pg_ctl")]
N_TRIALS = 6


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def postgres_url():
    if not all(binary.is_file() for binary in BINARIES):
        pytest.skip(f"PostgreSQL server binaries not found ({', '.join(map(str, BINARIES))}; set TINYKD_PG_BIN to "
                    "their directory, e.g. /usr/lib/postgresql/15/bin)")
    initdb, pg_ctl = map(str, BINARIES)
    root = Path(tempfile.mkdtemp(prefix="tinykd-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # the server will not run as root
        nobody = pwd.getpwnam("nobody")
        os.chown(root, nobody.pw_uid, nobody.pw_gid)
        as_user = ["runuser", "-u", "nobody", "--"]
    data, port = root / "data", _free_port()
    run = lambda *args: subprocess.run([*as_user, *args], check=True, capture_output=True, timeout=120)  # noqa: E731
    try:
        run(initdb, "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync")
        run(pg_ctl, "-D", str(data), "-l", str(root / "server.log"), "-w", "-t", "60", "start", "-o",
            f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off")
    except subprocess.CalledProcessError as err:
        log = (root / "server.log").read_text() if (root / "server.log").is_file() else ""
        shutil.rmtree(root, ignore_errors=True)
        raise AssertionError(f"could not start PostgreSQL: {err.stderr.decode()}{log}") from None
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


def test_two_workers_share_one_study_and_every_trial_lands_once(tmp_path, sentiment_files, postgres_url):
    path, config, paths = parent_run(tmp_path, sentiment_files, search=search_section(
        n_trials=N_TRIALS, storage=postgres_url, heartbeat_s=10))  # 2 s: a starved CI machine failed a live trial
    logs = [tmp_path / "worker0.log", tmp_path / "worker1.log"]
    workers = [start_worker(path, tmp_path / "runs", log) for log in logs]
    outputs = [finish(worker, log) for worker, log in zip(workers, logs)]

    study = trials(postgres_url.replace("postgresql://", "postgresql+psycopg2://"), "tiny")
    assert sorted(t.number for t in study) == list(range(N_TRIALS))  # exactly the budget, no extra trial
    assert all(t.state == TrialState.COMPLETE for t in study)
    params = [tuple(sorted(t.params.items())) for t in study]
    assert len(set(params)) == N_TRIALS, params  # the two workers did not sample the same sequence
    ran = [{int(line.split()[2]) for line in output.splitlines() if line.startswith("search: trial ")}
           for output in outputs]
    assert ran[0] and ran[1], f"one worker ran every trial: {ran}"
    assert ran[0] | ran[1] == set(range(N_TRIALS)) and not ran[0] & ran[1]  # each trial ran in one worker only
    table = pd.read_csv(paths.root / "search" / "trials.csv")
    assert list(table["number"]) == list(range(N_TRIALS)) and (table["state"] == "COMPLETE").all()
    assert "postgresql+psycopg2://postgres@127.0.0.1" in (paths.root / "search" / "summary.md").read_text()
