"""A kill (SIGKILL) during `teacher` or `label`, then the same command again: it resumes and completes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import ROOT, file_task, install_as_teacher, sentiment_rows, write_config, write_tsv
from tinykd import data_stage
from tinykd.artifacts import RunPaths
from tinykd.config_loading import load_config
from tinykd.teacher import labeling

pytestmark = pytest.mark.slow


def _command(config: Path, runs: Path, stage: str) -> list[str]:
    return [sys.executable, "-m", "tinykd", stage, "--config", str(config), "--runs-dir", str(runs)]


def _kill_when(command: list[str], ready, timeout: float = 120) -> None:
    """Start the stage, SIGKILL it as soon as `ready()` holds (so the kill lands mid-stage)."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while not ready():
        assert process.poll() is None, "the stage finished before it could be killed; make it longer"
        assert time.monotonic() < deadline, "timed out waiting for the stage to make progress"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()


def _finish(command: list[str]) -> str:
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _prepare(config: Path, paths: RunPaths, teacher: Path | None = None, label: bool = False) -> None:
    """The stages before the one under test, in this process: a stage's CLI start-up (torch and transformers
    imports) costs seconds, and only the killed run and its rerun need to be processes of their own."""
    loaded = load_config(config)
    data_stage.run(loaded, paths)
    if teacher is not None:
        install_as_teacher(paths, teacher)
    if label:
        labeling.run(loaded, paths)


def test_teacher_resumes_after_kill(sentiment_files, tiny_teacher, tmp_path):
    config = write_config(tmp_path / "c.yaml", {
        "task": file_task(sentiment_files),
        "teacher": {"base": str(tiny_teacher), "epochs": 12, "batch_size": 16, "learning_rate": 3e-3,
                    "save_steps": 5},
    })
    runs = tmp_path / "runs"
    paths = RunPaths(runs / "tiny")
    _prepare(config, paths)
    checkpoints = paths.teacher_checkpoints

    def checkpoint_saved() -> bool:
        return any((c / "trainer_state.json").exists() for c in checkpoints.glob("checkpoint-*"))

    _kill_when(_command(config, runs, "teacher"), checkpoint_saved)
    assert not paths.teacher_metrics.exists()  # a killed stage leaves nothing that looks finished
    output = _finish(_command(config, runs, "teacher"))
    assert "resumed at step" in output
    metrics = pd.read_json(paths.teacher_metrics, typ="series")
    assert metrics["resumed_from_step"] >= 5 and metrics["test"]["accuracy"] >= 0.9
    assert (paths.teacher_model / "model.safetensors").is_file()


def test_label_resumes_after_kill(tiny_teacher, tmp_path):
    rows = sentiment_rows(1200, seed=3)
    files = {"train": write_tsv(tmp_path / "train.tsv", rows[:1000]),
             "dev": write_tsv(tmp_path / "dev.tsv", rows[1000:1100]),
             "test": write_tsv(tmp_path / "test.tsv", rows[1100:])}
    config = write_config(tmp_path / "c.yaml", {
        "task": file_task(files), "label": {"chunk_rows": 40, "batch_size": 1},
    })
    runs = tmp_path / "runs"
    paths = RunPaths(runs / "tiny")
    _prepare(config, paths, teacher=tiny_teacher)

    parts = paths.label_parts("train")
    _kill_when(_command(config, runs, "label"), lambda: len(list(parts.glob("part-*.parquet"))) >= 3)
    assert not paths.labels("train").exists()
    output = _finish(_command(config, runs, "label"))
    assert "chunks reused from an earlier run" in output
    resumed = pd.read_parquet(paths.labels("train"))
    assert len(resumed) == 1000 and resumed["text_a"].equals(pd.read_parquet(paths.split("train"))["text_a"])

    # The resumed artifact equals a clean run's.
    fresh_paths = RunPaths(tmp_path / "fresh" / "tiny")
    _prepare(config, fresh_paths, teacher=tiny_teacher, label=True)
    fresh = pd.read_parquet(fresh_paths.labels("train"))
    np.testing.assert_allclose(np.stack(resumed["logits"]), np.stack(fresh["logits"]), atol=1e-6)


def test_transformer_student_resumes_after_kill(sentiment_files, tiny_teacher, tmp_path):
    from safetensors.torch import load_file

    student = {"name": "tiny", "kind": "transformer", "layers": 1, "hidden": 16, "heads": 2, "intermediate": 32,
               "relation": {"heads": 2}, "save_steps": 5,
               "schedule": [{"stage": "task_prediction", "epochs": 8, "batch_size": 16, "learning_rate": 1e-3}]}
    config = write_config(tmp_path / "c.yaml", {"task": file_task(sentiment_files), "students": [student]})
    runs, fresh_runs = tmp_path / "runs", tmp_path / "fresh"
    for base in (runs, fresh_runs):
        _prepare(config, RunPaths(base / "tiny"), teacher=tiny_teacher, label=True)
    stage_dir = RunPaths(runs / "tiny").root / "students" / "tiny" / "stages" / "0-task_prediction"

    def epoch_boundary_saved() -> bool:
        # 240 rows / 16 = 15 steps an epoch: step 15 is both a checkpoint and epoch 1's end, the case where a
        # resumed run starts at epoch 2 and must not have lost epoch 1's dev evaluation (a flaky failure in CI).
        checkpoints = (stage_dir / "checkpoints").glob("checkpoint-*")
        return any((c / "trainer_state.json").exists() and int(c.name.split("-")[1]) >= 15 for c in checkpoints)

    _kill_when(_command(config, runs, "distill"), epoch_boundary_saved)
    assert not (stage_dir / "stage.json").exists()
    _finish(_command(config, runs, "distill"))
    stage = pd.read_json(stage_dir / "stage.json", typ="series")
    assert stage["resumed_from_step"] >= 15

    # The resumed run ends where an uninterrupted one does (the Trainer restores optimizer and RNG state).
    _finish(_command(config, fresh_runs, "distill"))
    resumed = load_file(runs / "tiny" / "students" / "tiny" / "model" / "model.safetensors")
    fresh = load_file(fresh_runs / "tiny" / "students" / "tiny" / "model" / "model.safetensors")
    for name, tensor in fresh.items():
        np.testing.assert_allclose(resumed[name].numpy(), tensor.numpy(), atol=1e-5, err_msg=name)
