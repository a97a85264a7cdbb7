"""A run directory as `compress` leaves it, for the serving tests: the tiny random teacher, built as torch-fp32."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from tests.conftest import file_task, install_as_teacher, sentiment_rows, write_config
from tinykd.artifacts import RunPaths, write_json
from tinykd.config_loading import load_config


def served_run(tmp_path: Path, teacher: Path, sentiment_files: dict, **sections):
    """(config, paths): the test split, the teacher and its built torch-fp32 backend; `sections` join the config."""
    paths = RunPaths(tmp_path / "run")
    paths.data_dir.mkdir(parents=True)
    pd.DataFrame([{"text_a": text, "label": label} for label, text in sentiment_rows(60)]).to_parquet(paths.split("test"))
    install_as_teacher(paths, teacher)
    paths.compressed("teacher", "torch-fp32").mkdir(parents=True)
    write_json(paths.compressed("teacher", "torch-fp32") / "metrics.json", {"fingerprint": "built", "accuracy": 0.5})
    config = load_config(write_config(tmp_path / "c.yaml", {"task": file_task(sentiment_files), **sections}))
    return config, paths
