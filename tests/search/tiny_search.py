"""A parent run with only the data stage done, and a search over a gold-only BOW student: trials take seconds."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import file_task, write_config
from tinykd import data_stage
from tinykd.artifacts import RunPaths
from tinykd.config_loading import load_config

STUDENT = {"name": "bow", "kind": "bow", "tokens": "char", "data": "gold", "losses": {"hard": 1.0, "soft": 0.0},
           "epochs": 3, "min_freq": 1, "embedding_dim": 16, "hidden_size": 16, "batch_size": 16,
           "learning_rate": 0.01, "patience": 3}
SPACE = [{"path": "students.bow.learning_rate", "type": "log_float", "low": 1e-3, "high": 3e-2},
         {"path": "students.bow.embedding_dim", "type": "int", "low": 8, "high": 32, "step": 8}]
QUICK_BENCH = {"warmup_s": 0.05, "duration_s": 0.2, "repeats": 1}


def search_section(**overrides) -> dict:
    return {"student": "bow", "backend": "onnx-int8-dynamic", "space": SPACE, "n_trials": 3, "heartbeat_s": 1,
            "pruner": "none", "bench": QUICK_BENCH, **overrides}


def config_file(tmp_path: Path, files: dict[str, Path], **sections) -> Path:
    """A config whose search section is `search_section()` unless `search` is given."""
    return write_config(tmp_path / "c.yaml", {
        "task": file_task(files), "students": [STUDENT],
        "bench": {"rows": 20, "threads": [1], "batch_sizes": [1, 4], "min_calls": 4},
        "budget": {"qps": 1, "p99_ms": 10000, "batch": 1, "threads": 1},
        "search": search_section(), **sections})


def parent_run(tmp_path: Path, files: dict[str, Path], **sections):
    """The config, and a run directory with the data stage done (all a gold-only student needs)."""
    path = config_file(tmp_path, files, **sections)
    config = load_config(path)
    paths = RunPaths(tmp_path / "runs" / config.task.name)
    data_stage.run(config, paths)
    return path, config, paths
