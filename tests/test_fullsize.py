"""Full-size targets (hours on 2 CPU cores; minutes on a GPU): `make test-full`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT, SHARED_DATA

pytestmark = [pytest.mark.fullsize, pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data")]


def test_chnsenticorp_teacher_beats_the_tfidf_baseline_clearly(tmp_path):
    """Issue target: >= 93.5% test accuracy (character TF-IDF + logistic regression reaches 92.25%)."""
    command = [sys.executable, "-m", "tinykd", "all", "--config", "configs/chnsenticorp.yaml",
               "--runs-dir", str(tmp_path), "--set", "label.splits=[test]"]
    subprocess.run(command, cwd=ROOT, check=True)
    metrics = json.loads((tmp_path / "chnsenticorp" / "teacher" / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] >= 0.935, metrics["test"]["accuracy"]


def test_chnsenticorp_four_layer_student_keeps_98_percent_of_the_teacher(tmp_path):
    """Issue target: a 4-layer, hidden-384 student (teacher-layer init, pruned vocabulary) reaches >= 98% of
    the teacher's test accuracy (ERNIE-Tiny keeps >= 98% of its 12-layer teacher on GLUE)."""
    run = [sys.executable, "-m", "tinykd"]
    args = ["--config", "configs/chnsenticorp.yaml", "--runs-dir", str(tmp_path)]
    for stage in ("data", "augment", "teacher", "label"):
        subprocess.run([*run, stage, *args], cwd=ROOT, check=True)
    subprocess.run([*run, "distill", *args, "--student", "tiny4l384"], cwd=ROOT, check=True)
    root = tmp_path / "chnsenticorp"
    teacher = json.loads((root / "teacher" / "metrics.json").read_text())["test"]["accuracy"]
    student = json.loads((root / "students" / "tiny4l384" / "metrics.json").read_text())
    assert student["vocabulary"] < student["teacher_vocabulary"]  # pruned
    assert student["test"]["accuracy"] >= 0.98 * teacher, (student["test"]["accuracy"], teacher)
