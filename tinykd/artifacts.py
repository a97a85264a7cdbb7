"""Where each stage's artifacts live under `runs/<task>/`, and how they are written.

Every artifact is written under a temporary name and renamed into place, so a killed stage never
leaves a file or directory that looks finished. A stage records a *fingerprint* (hash of the config
sections and input artifacts it depends on) so a re-run with nothing changed is a no-op and a changed
config re-runs only what depends on it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pandas as pd

from tinykd.errors import ArtifactError

RUNS_ENV = "TINYKD_RUNS"


@dataclass(frozen=True)
class RunPaths:
    """All artifact paths of one task run. `root` is `runs/<task>` (or `$TINYKD_RUNS/<task>`)."""

    root: Path

    @classmethod
    def for_task(cls, task_name: str, runs_dir: str | Path | None = None) -> RunPaths:
        base = Path(runs_dir or os.environ.get(RUNS_ENV) or "runs")
        return cls(base / task_name)

    # data stage
    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def split(self, name: str) -> Path:
        return self.data_dir / f"{name}.parquet"

    @property
    def data_summary(self) -> Path:
        return self.data_dir / "summary.json"

    # teacher stage
    @property
    def teacher_dir(self) -> Path:
        return self.root / "teacher"

    @property
    def teacher_model(self) -> Path:
        return self.teacher_dir / "model"

    @property
    def teacher_metrics(self) -> Path:
        return self.teacher_dir / "metrics.json"

    @property
    def teacher_checkpoints(self) -> Path:
        return self.teacher_dir / "checkpoints"

    # augment stage
    @property
    def augment_dir(self) -> Path:
        return self.root / "augment"

    @property
    def augmented(self) -> Path:
        return self.augment_dir / "augmented.parquet"

    @property
    def augment_summary(self) -> Path:
        return self.augment_dir / "summary.json"

    @property
    def tagged_train(self) -> Path:
        return self.augment_dir / "tagged_train.parquet"

    @property
    def pos_index(self) -> Path:
        return self.augment_dir / "pos_index.json"

    # label stage
    @property
    def label_dir(self) -> Path:
        return self.root / "label"

    def labels(self, split: str) -> Path:
        return self.label_dir / f"{split}.parquet"

    def label_parts(self, split: str) -> Path:
        return self.label_dir / f".{split}.parts"

    # distill stage
    def student_dir(self, name: str) -> Path:
        return self.root / "students" / name

    def model_dir(self, name: str) -> Path:
        """The save_pretrained directory of 'teacher' or a student."""
        return self.teacher_model if name == "teacher" else self.student_dir(name) / "model"

    def model_metrics(self, name: str) -> Path:
        """The metrics.json (with its fingerprint) of 'teacher' or a student."""
        return self.teacher_metrics if name == "teacher" else self.student_dir(name) / "metrics.json"

    @staticmethod
    def model_stage(name: str) -> str:
        """The stage that writes 'teacher' or a student: what a missing-model error tells the user to run."""
        return "teacher" if name == "teacher" else "distill"

    # compress stage
    def compressed(self, model: str, backend: str) -> Path:
        return self.root / "compressed" / model / backend

    # bench and report stages
    @property
    def bench_dir(self) -> Path:
        return self.root / "bench"

    @property
    def report_dir(self) -> Path:
        return self.root / "report"

    # load experiment
    @property
    def load_dir(self) -> Path:
        return self.root / "load"

    # search experiment
    def search_dir(self, study: str | None = None) -> Path:
        """One study's outputs and trials: `search/` for the default study (named after the task), `search/<study>/`
        for any other `search.study_name`, so two studies of a task never overwrite each other's files."""
        base = self.root / "search"
        return base if study in (None, self.root.name) else base / study


def require(path: Path, stage: str) -> Path:
    """Fail with a clear message when an input artifact is missing."""
    if not path.exists():
        raise ArtifactError(f"{path}: missing; run the '{stage}' stage first (python -m tinykd {stage} --config ...)")
    return path


def _tmp_sibling(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary sibling path to write; rename it over `path` only if the block succeeds.

    Works for files and directories (an existing directory at `path` is replaced).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_sibling(path)
    _remove(tmp)
    try:
        yield tmp
        if path.is_dir() and tmp.is_dir():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            _remove(old)
        else:
            os.replace(tmp, path)
    finally:
        _remove(tmp)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def write_json(path: Path, payload: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def write_parquet(path: Path, frame: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def fingerprint(*parts: Any) -> str:
    """A short stable hash of config sections (pydantic models or plain data) and input fingerprints."""
    def plain(part: Any) -> Any:
        return part.model_dump(mode="json") if hasattr(part, "model_dump") else part

    blob = json.dumps([plain(p) for p in parts], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def directory_digest(directory: Path) -> str:
    """A hash of every file's relative name and bytes under `directory`: what a local model dir another stage
    starts from holds (a teacher base, another student's checkpoint), so re-saving it invalidates what was trained
    from it, which its path alone would not."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(path.relative_to(directory).as_posix().encode() + b"\0")
        with path.open("rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def recorded_fingerprint(path: Path) -> str | None:
    """The fingerprint stored in a stage's JSON summary, or None when absent or unreadable."""
    try:
        return read_json(path).get("fingerprint")
    except (OSError, ValueError, AttributeError):
        return None
