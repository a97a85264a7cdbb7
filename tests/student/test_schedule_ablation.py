"""The `ablate-schedule` experiment: five schedules of one tiny transformer, each adding one recipe part, or the
user's own named `variants`."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from tests.conftest import file_task, write_config
from tests.student.test_distill_stage import _pipeline
from tests.student.test_transformer_distill import TINY
from tinykd.artifacts import RunPaths
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


# Two user variants at equal epochs: the student's own schedule (TD1 then TD2, T=1) and TD2 alone on gold rows, T=4.
VARIANTS = [
    {"name": "TD1 1 + TD2 1, T=1", "schedule": STUDENT["schedule"]},
    {"name": "TD2 2, T=4", "schedule": [{"stage": "task_prediction", "data": "gold", "max_rows": 32, "epochs": 2,
                                         "batch_size": 16, "learning_rate": 1e-3, "temperature": 4}]},
]


def test_variants_replace_the_built_in_schedules_and_train_as_written(sentiment_files, tiny_teacher, tmp_path):
    config, paths = _pipeline(tmp_path, sentiment_files, tiny_teacher, students=[STUDENT])
    config = config.model_copy(update={"schedule_ablation": ScheduleAblationConfig.model_validate(
        {"student": "tiny", "seeds": [0, 1], "variants": VARIANTS})})
    out = paths.root / "schedule_ablation"

    result = schedule_ablation.run(config, paths)
    names = [v["name"] for v in VARIANTS]
    table = pd.read_csv(out / "ablation.csv")
    assert list(table["variant"]) == list(result.table["variant"]) == names
    runs = pd.read_csv(out / "runs.csv")
    assert list(zip(runs["variant"], runs["seed"])) == [(names[0], 0), (names[1], 0), (names[0], 1), (names[1], 1)]
    # The first variant is the student's own schedule: at the student's seed it trains in students/tiny/.
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == [
        "TD1-1-plus-TD2-1-T-1-seed1", "TD2-2-T-4-seed0", "TD2-2-T-4-seed1"]
    trained = {(names[0], 0): paths.root / "students" / "tiny", (names[0], 1): out / "TD1-1-plus-TD2-1-T-1-seed1",
               (names[1], 0): out / "TD2-2-T-4-seed0", (names[1], 1): out / "TD2-2-T-4-seed1"}
    for (name, seed), directory in trained.items():
        written = next(v["schedule"] for v in VARIANTS if v["name"] == name)
        got = json.loads((directory / "metrics.json").read_text())["config"]
        assert got["seed"] == seed
        assert got["schedule"] == [ScheduleStage.model_validate(s).model_dump(mode="json") for s in written]
        stages = sorted(p.name for p in (directory / "stages").iterdir())
        assert stages == [f"{i}-{s['stage']}" for i, s in enumerate(written)]
    relation = json.loads((trained[(names[0], 1)] / "stages" / "0-task_relation" / "stage.json").read_text())
    assert (relation["data"], relation["rows"]) == ("distilled", 64)  # no `data`: the student's default
    prediction = json.loads((trained[(names[1], 1)] / "stages" / "0-task_prediction" / "stage.json").read_text())
    assert (prediction["data"], prediction["rows"]) == ("gold", 32)

    rows = table.set_index("variant")
    assert list(rows["schedule"]) == ["task_relation(distilled; relation) -> task_prediction(distilled; soft+hard)",
                                      "task_prediction(gold; soft+hard)"]
    assert list(rows["epochs"]) == [2, 2] and list(rows["passes"]) == [64 + 96, 2 * 32]
    assert list(rows["seeds"]) == [2, 2] and rows["test_mean"].between(0, 1).all()
    assert "| TD2 2, T=4 | task_prediction(gold; soft+hard) | 2 | 64 | 2 |" in (out / "ablation.md").read_text()
    summary = json.loads((out / "summary.json").read_text())
    assert [r["variant"] for r in summary["rows"]] == names and summary["seeds"] == [0, 1]


def _fake_trainer(calls: list):
    """Stands in for distill_transformer: records (spec, out_dir) and writes what the experiment reads back."""
    def train(config, spec, paths, out_dir=None):
        calls.append((spec, out_dir))
        for i, stage in enumerate(spec.schedule):
            (out_dir / "stages" / f"{i}-{stage.stage}").mkdir(parents=True, exist_ok=True)
            (out_dir / "stages" / f"{i}-{stage.stage}" / "stage.json").write_text(json.dumps({"rows": 10}))
        return {"dev": {"accuracy": 0.5}, "test": {"accuracy": 0.5}, "train_seconds": 1.0, "parameters": 1}
    return train


def test_variant_names_that_slug_alike_train_in_distinct_directories(sentiment_files, tmp_path, monkeypatch):
    prediction = {"stage": "task_prediction", "max_rows": 8}
    names = ["T=1", "T 1", "t 1", "T=1, lr 1e-4", "..", "只有金标"]
    path = write_config(tmp_path / "c.yaml", {
        "task": file_task(sentiment_files), "augment": {}, "students": [STUDENT],
        "schedule_ablation": {"student": "tiny", "seeds": [3, 4], "variants": [
            {"name": name, "schedule": [prediction | {"temperature": i + 1}]} for i, name in enumerate(names)]}})
    config, paths = load_config(path), RunPaths(tmp_path / "run")
    paths.teacher_metrics.parent.mkdir(parents=True)
    paths.teacher_metrics.write_text(json.dumps({"test": {"accuracy": 0.9}}))
    calls = []
    monkeypatch.setattr(schedule_ablation, "distill_transformer", _fake_trainer(calls))

    schedule_ablation.run(config, paths)
    assert [(spec.seed, spec.schedule[0].temperature) for spec, _ in calls] == [
        (seed, i + 1) for seed in (3, 4) for i in range(len(names))]
    directories = [out_dir for _, out_dir in calls]
    assert len({d.name.lower() for d in directories}) == len(calls)  # distinct even on a case-insensitive disk
    assert len({spec.name for spec, _ in calls}) == len(calls)
    for directory in directories:
        assert directory.parent == paths.root / "schedule_ablation"
        assert re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*-seed[34]", directory.name), directory.name
    assert directories[3].name == "T-1-lr-1e-4-seed3"  # a slug no other name shares stays plain
    assert list(pd.read_csv(paths.root / "schedule_ablation" / "ablation.csv")["variant"]) == names
    assert list(pd.read_csv(paths.root / "schedule_ablation" / "ablation.csv")["passes"]) == [10.0] * len(names)


@pytest.mark.parametrize(("names", "problem"), [
    (["TD2 3, T=4", "TD1 1 + TD2 2", "TD2 3, T=4"],
     r"schedule_ablation: variants\.2\.name: duplicate variant name 'TD2 3, T=4' \(also variants\.0\.name\)"),
    (["ok", " "], r"schedule_ablation\.variants\.1\.name: a variant needs a name"),
], ids=["duplicate", "empty"])
def test_variant_names_are_unique_and_not_empty(sentiment_files, tmp_path, names, problem):
    path = write_config(tmp_path / "c.yaml", {
        "task": file_task(sentiment_files), "augment": {}, "students": [STUDENT],
        "schedule_ablation": {"student": "tiny", "variants": [
            {"name": name, "schedule": [{"stage": "task_prediction"}]} for name in names]}})
    lines = path.read_text(encoding="utf-8").splitlines()
    variants = next(i for i, text in enumerate(lines) if text.strip() == "variants:")
    line = [i for i, text in enumerate(lines, 1) if i > variants and text.strip().startswith("- name:")][-1]
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}:{line}: {problem}"):
        load_config(path)


def test_variant_stages_are_checked_at_load_like_a_students_schedule(sentiment_files, tmp_path):
    """A variant that could not train fails before any variant trains, naming the variant and its stage."""
    variants = [{"name": "ok", "schedule": [{"stage": "task_prediction"}]},
                {"name": "no loss", "schedule": [{"stage": "task_prediction",
                                                  "losses": {"soft": 0, "hard": 0, "relation": 0}}]}]
    path = write_config(tmp_path / "c.yaml", {"task": file_task(sentiment_files), "augment": {}, "students": [STUDENT],
                                              "schedule_ablation": {"student": "tiny", "variants": variants}})
    with pytest.raises(ConfigError, match=r"schedule_ablation.variants.1 \(no loss\): schedule.0 \(task_prediction\): "
                                          r"every loss weight is 0"):
        load_config(path)
    variants[1] = {"name": "pool", "schedule": [{"stage": "task_prediction", "data": "pool"}]}
    path = write_config(tmp_path / "d.yaml", {"task": file_task(sentiment_files), "augment": {}, "students": [STUDENT],
                                              "schedule_ablation": {"student": "tiny", "variants": variants}})
    with pytest.raises(ConfigError, match=r"variants.1 \(pool\): schedule.0 \(task_prediction\): data 'pool' needs an "
                                          r"unlabeled pool"):
        load_config(path)
