"""`torchrun --nproc_per_node=2` on CPU (gloo): a tiny transformer student trains data-parallel."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT, file_task, install_as_teacher, write_config
from tinykd.artifacts import RunPaths

pytestmark = pytest.mark.slow


@pytest.mark.skipif(shutil.which("torchrun") is None and not (ROOT / ".venv/bin/torchrun").exists(),
                    reason="torchrun is not on PATH")
def test_two_process_cpu_training(sentiment_files, tiny_teacher, tmp_path):
    student = {"name": "tiny", "kind": "transformer", "layers": 1, "hidden": 16, "heads": 2, "intermediate": 32,
               "relation": {"heads": 2},
               "schedule": [{"stage": "task_relation", "epochs": 1, "batch_size": 8},
                            {"stage": "task_prediction", "epochs": 2, "batch_size": 8, "learning_rate": 1e-3}]}
    config = write_config(tmp_path / "c.yaml", {"task": file_task(sentiment_files), "students": [student]})
    runs = tmp_path / "runs"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cli = [sys.executable, "-m", "tinykd"]
    for stage in ("data", "label"):
        if stage == "label":
            install_as_teacher(RunPaths(runs / "tiny"), tiny_teacher)
        subprocess.run([*cli, stage, "--config", str(config), "--runs-dir", str(runs)], cwd=ROOT, env=env, check=True,
                       capture_output=True)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    done = subprocess.run([*torchrun, "-m", "tinykd", "distill", "--config", str(config), "--runs-dir", str(runs)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = runs / "tiny" / "students" / "tiny"
    for stage in ("0-task_relation", "1-task_prediction"):
        record = json.loads((out / "stages" / stage / "stage.json").read_text())
        assert record["world_size"] == 2
    # 240 train rows, batch 8 per process, 2 processes: 15 optimizer steps per epoch, not 30.
    prediction = json.loads((out / "stages" / "1-task_prediction" / "stage.json").read_text())
    assert max(e["step"] for e in prediction["log"]) == 30
    assert json.loads((out / "metrics.json").read_text())["test"]["accuracy"] > 0
