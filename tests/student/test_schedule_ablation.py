"""The `ablate-schedule` experiment: five schedules of one tiny transformer, each adding one recipe part."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.conftest import file_task, write_config
from tests.student.test_distill_stage import _pipeline
from tests.student.test_transformer_distill import TINY
from tinykd.config import ScheduleAblationConfig, ScheduleStage, TransformerStudentSpec
from tinykd.config_loading import load_config
from tinykd.errors import ConfigError
from tinykd.student import stage as distill_stage
from tinykd.student.experiments import schedule_ablation

STUDENT = dict(TINY, schedule=[
    {"stage": "task_relation", "max_rows": 64, "epochs": 1, "batch_size": 16, "learning_rate": 1e-3},
    {"stage": "task_prediction", "max_rows": 96, "epochs": 1, "batch_size": 16, "learning_rate": 1e-3},
])


def test_variants_add_one_part_each_and_keep_the_students_stage_settings():
    spec = TransformerStudentSpec.model_validate(STUDENT)
    chosen = schedule_ablation.variants(spec, has_augment=True)
    described = {name: schedule_ablation.describe(stages) for name, stages in chosen.items()}
    assert described == {
        "gold only": "task_prediction(gold; hard)",
        "+ soft labels": "task_prediction(gold; soft+hard)",
        "+ TD1 relations": "task_relation(gold; relation) -> task_prediction(gold; soft+hard)",
        "+ augmented rows": "task_relation(distilled; relation) -> task_prediction(distilled; soft+hard)",
        "+ general": "general(unlabeled; relation) -> task_relation(distilled; relation) -> "
                     "task_prediction(distilled; soft+hard)",
    }
    assert all(stages[-1].learning_rate == 1e-3 and stages[-1].max_rows == 96 for stages in chosen.values())
    general = ScheduleStage(stage="general", max_rows=32)
    assert schedule_ablation.variants(spec, True, general)["+ general"][0] == general.model_copy(update={"data": "unlabeled"})
    assert list(schedule_ablation.variants(spec, has_augment=False)) == ["gold only", "+ soft labels", "+ TD1 relations"]


def test_ablation_trains_every_variant_and_reuses_the_configured_student(sentiment_files, tiny_teacher, tmp_path):
    config, paths = _pipeline(tmp_path, sentiment_files, tiny_teacher, students=[STUDENT])
    config = config.model_copy(update={"schedule_ablation": ScheduleAblationConfig(student="tiny")})
    distill_stage.run(config, paths)  # the configured schedule is the "+ augmented rows" variant
    configured = paths.root / "students" / "tiny" / "metrics.json"
    written = configured.stat().st_mtime_ns

    result = schedule_ablation.run(config, paths)
    table = pd.read_csv(paths.root / "schedule_ablation" / "ablation.csv")
    assert list(table["variant"]) == list(result.table["variant"]) == [
        "gold only", "+ soft labels", "+ TD1 relations", "+ augmented rows", "+ general"]
    assert configured.stat().st_mtime_ns == written  # reused, not retrained
    assert sorted(p.name for p in (paths.root / "schedule_ablation").iterdir() if p.is_dir()) == [
        "gold-only-seed0", "plus-TD1-relations-seed0", "plus-general-seed0", "plus-soft-labels-seed0"]
    row = table.set_index("variant").loc["+ augmented rows"]
    assert row["test_mean"] == json.loads(configured.read_text())["test"]["accuracy"]
    assert (table["train_seconds"] > 0).all() and table["test_mean"].between(0, 1).all()
    general = json.loads((paths.root / "schedule_ablation" / "plus-general-seed0" / "stages" / "0-general"
                          / "stage.json").read_text())
    assert general["data"] == "unlabeled"
    assert row["schedule"] == "task_relation(distilled; relation) -> task_prediction(distilled; soft+hard)"
    assert "| + TD1 relations | task_relation(gold; relation)" in (
        paths.root / "schedule_ablation" / "ablation.md").read_text()


def test_schedule_ablation_general_must_be_a_general_stage(sentiment_files, tmp_path):
    path = write_config(tmp_path / "c.yaml", {"task": file_task(sentiment_files), "augment": {}, "students": [STUDENT],
                                              "schedule_ablation": {"student": "tiny",
                                                                    "general": {"stage": "task_relation"}}})
    with pytest.raises(ConfigError, match=r"schedule_ablation.general.*must be 'general', not 'task_relation'"):
        load_config(path)


def test_schedule_ablation_needs_a_transformer_student(sentiment_files, tmp_path):
    path = write_config(tmp_path / "c.yaml", {"task": file_task(sentiment_files), "augment": {},
                                              "students": [{"name": "bow", "kind": "bow"}],
                                              "schedule_ablation": {"student": "bow"}})
    with pytest.raises(ConfigError, match=r"schedule_ablation.student: 'bow' is not a transformer student"):
        load_config(path)
