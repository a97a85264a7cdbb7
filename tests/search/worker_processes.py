"""Search workers as real processes (`python -m tinykd search`), as `make search WORKERS=N` starts them."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna

from tests.conftest import ROOT


def start_worker(config: Path, runs_dir: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    handle = open(log, "ab")
    return subprocess.Popen([sys.executable, "-m", "tinykd", "search", "--config", str(config), "--runs-dir",
                             str(runs_dir)], cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT, env=env)


def finish(worker: subprocess.Popen, log: Path, timeout_s: float = 420) -> str:
    """Wait for the worker; its output, and a failure with that output if it did not exit 0."""
    try:
        worker.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()
    output = log.read_text(errors="replace")
    assert worker.returncode == 0, f"worker exited {worker.returncode}:\n{output[-3000:]}"
    return output


def wait_for(condition, timeout_s: float, what: str, worker: subprocess.Popen | None = None, log: Path | None = None):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if worker is not None and worker.poll() is not None:
            raise AssertionError(f"worker exited {worker.returncode} before {what}:\n"
                                 f"{log.read_text(errors='replace')[-3000:] if log else ''}")
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def trials(storage_url: str, study_name: str) -> list[optuna.trial.FrozenTrial]:
    """The study's trials as another process sees them (an empty list before the worker has created the study).
    Until the worker has stamped the schema's version this reader does not open the storage: Optuna's RDBStorage
    writes the version rows when they are missing, even with skip_table_creation, and would race the worker's own
    stamp (UNIQUE constraint failed: alembic_version.version_num)."""
    if storage_url.startswith("sqlite:"):
        path = Path(storage_url.removeprefix("sqlite:///"))
        if not path.is_file():
            return []
        try:
            with contextlib.closing(sqlite3.connect(path, timeout=60)) as db:
                if not db.execute("SELECT count(*) FROM alembic_version").fetchone()[0]:
                    return []
        except sqlite3.OperationalError:  # no alembic_version table yet
            return []
    try:
        storage = optuna.storages.RDBStorage(storage_url, skip_table_creation=True, skip_compatibility_check=True)
        return optuna.load_study(study_name=study_name, storage=storage).get_trials(deepcopy=False)
    except Exception:  # noqa: BLE001  tables or study not created yet
        return []
