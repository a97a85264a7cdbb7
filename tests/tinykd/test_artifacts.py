"""Atomic artifact writes and fingerprints: a failed write never leaves something that looks finished."""

from __future__ import annotations

import pytest

from tinykd.artifacts import RunPaths, atomic_path, fingerprint, recorded_fingerprint, require, write_json
from tinykd.config import TeacherConfig
from tinykd.errors import ArtifactError


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "a.json"
    write_json(target, {"v": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text().strip().endswith("}") and '"v": 1' in target.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_directory_is_replaced_whole(tmp_path):
    target = tmp_path / "model"
    with atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "old.bin").write_text("old")
    with atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "new.bin").write_text("new")
    assert [p.name for p in target.iterdir()] == ["new.bin"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_fingerprint_follows_the_config_section(tmp_path):
    assert fingerprint(TeacherConfig()) == fingerprint(TeacherConfig())
    assert fingerprint(TeacherConfig()) != fingerprint(TeacherConfig(epochs=2))
    assert fingerprint(TeacherConfig(), "data-a") != fingerprint(TeacherConfig(), "data-b")
    write_json(tmp_path / "m.json", {"fingerprint": "abc"})
    assert recorded_fingerprint(tmp_path / "m.json") == "abc"
    assert recorded_fingerprint(tmp_path / "missing.json") is None


def test_missing_input_names_the_stage_to_run(tmp_path):
    paths = RunPaths.for_task("t", tmp_path)
    with pytest.raises(ArtifactError, match=r"teacher/metrics.json: missing; run the 'teacher' stage first"):
        require(paths.teacher_metrics, "teacher")
