"""Where a study lives and how its workers take turns: an Optuna RDB storage (SQLite file or PostgreSQL URL).

Every running trial records a heartbeat; a trial silent for twice `search.heartbeat_s` (its worker was
killed) is marked failed by the next worker that looks and re-queued once with the same parameters, so a
killed worker loses only its running trial's progress. Workers claim trials under a study lock (a file
lock beside a SQLite file; a PostgreSQL advisory lock for a server), which makes "count the trials,
then start one" atomic: N workers stop at exactly `search.n_trials`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

from tinykd.artifacts import RunPaths
from tinykd.config import Config
from tinykd.errors import ConfigError

MAX_RETRIES = 1  # a trial whose worker dies twice (say, out of memory each time) stays failed
CONNECT_TIMEOUT_S = 10


def storage_url(config: Config, paths: RunPaths) -> str:
    """`search.storage`, default a SQLite file `runs/<task>/search/study.db`. A bare `postgresql://` URL goes
    through psycopg2 (a tinykd dependency; SQLAlchemy 2.1's default PostgreSQL driver is psycopg 3)."""
    url = config.search.storage or f"sqlite:///{(paths.search_dir() / 'study.db').resolve()}"
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg2://" + url.removeprefix("postgresql://")
    return url


def shown_url(url: str) -> str:
    """The URL without its password, for messages and files."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not parseable: show only the scheme
        return url.split("://", 1)[0] + "://..."


@contextlib.contextmanager
def _file_lock(sqlite_url: str) -> Iterator[None]:
    """An exclusive lock on `<db>.lock`; the kernel releases it if this process dies."""
    with open(sqlite_url.removeprefix("sqlite:///") + ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def _advisory_lock(engine, name: str) -> Iterator[None]:
    """A PostgreSQL advisory lock on one connection; the server drops it if the session dies."""
    import sqlalchemy

    key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
    with engine.connect() as connection:
        connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": key})
        connection.commit()
        try:
            yield
        finally:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": key})
            connection.commit()


@contextlib.contextmanager
def _creating_tables(url: str, engine_kwargs: dict) -> Iterator[None]:
    """Held while the storage is opened: workers starting together would race to create its tables."""
    if url.startswith("sqlite:"):
        with _file_lock(url):
            yield
        return
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, **engine_kwargs)
    try:
        with _advisory_lock(engine, "tinykd-search:create-tables"):
            yield
    finally:
        engine.dispose()


@dataclass
class StudyStorage:
    url: str
    storage: RDBStorage

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite:")

    @contextlib.contextmanager
    def lock(self, study_name: str) -> Iterator[None]:
        """Exclusive across every worker of the study, on this machine (SQLite) or any (PostgreSQL)."""
        if self.is_sqlite:
            with _file_lock(self.url):
                yield
            return
        with _advisory_lock(self.storage.engine, f"tinykd-study:{study_name}"):
            yield


def open_storage(config: Config, paths: RunPaths) -> StudyStorage:
    """Connect (creating the tables on first use); an unreachable URL is a config error naming it."""
    url = storage_url(config, paths)
    engine_kwargs = {}
    if url.startswith("sqlite:"):
        try:
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ConfigError(f"search.storage: cannot create the directory of {shown_url(url)}: {err}") from None
        engine_kwargs = {"connect_args": {"timeout": 60}}  # workers wait for each other's writes, not fail
    else:
        engine_kwargs = {"connect_args": {"connect_timeout": CONNECT_TIMEOUT_S}, "pool_pre_ping": True}
    try:
        with _creating_tables(url, engine_kwargs), warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            storage = RDBStorage(url, engine_kwargs=engine_kwargs, heartbeat_interval=config.search.heartbeat_s,
                                 grace_period=2 * config.search.heartbeat_s,
                                 heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRIES))
    except Exception as err:  # sqlalchemy/psycopg2 errors: show the cause, not a driver traceback
        cause = str(getattr(err, "orig", None) or err).strip().splitlines()[0]
        raise ConfigError(f"search.storage: cannot open the study storage {shown_url(url)}: {cause}") from None
    return StudyStorage(url, storage)
