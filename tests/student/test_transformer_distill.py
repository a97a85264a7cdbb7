"""A tiny transformer student through a general -> task_relation -> task_prediction schedule."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.conftest import file_task, write_config
from tests.student.test_distill_stage import _pipeline
from tinykd.config_loading import load_config
from tinykd.errors import ConfigError
from tinykd.student import stage as distill_stage

TINY = {"name": "tiny", "kind": "transformer", "layers": 1, "hidden": 16, "heads": 2, "intermediate": 32,
        "relation": {"heads": 2, "pairs": ["Q-Q", "K-K", "V-V", "Q-K"]}, "save_steps": 5,
        "schedule": [
            {"stage": "general", "max_rows": 48, "epochs": 1, "batch_size": 16},
            {"stage": "task_relation", "epochs": 1, "batch_size": 16, "learning_rate": 1e-3},
            {"stage": "task_prediction", "epochs": 2, "batch_size": 16, "learning_rate": 1e-3},
        ]}


def test_schedule_runs_each_stage_and_writes_a_pruned_student(sentiment_files, tiny_teacher, tmp_path):
    config, paths = _pipeline(tmp_path, sentiment_files, tiny_teacher, students=[TINY])
    result = distill_stage.run(config, paths)
    out = paths.root / "students" / "tiny"
    metrics = json.loads((out / "metrics.json").read_text())
    assert result.accuracy["tiny"] == metrics["test"]["accuracy"]
    # The tiny teacher's character vocabulary is all used by train/dev, so pruning keeps every row here
    # (tests/tinykd/test_vocabulary_pruning.py covers real pruning); the map must still be saved and consistent.
    assert len(json.loads((out / "model" / "tinykd_token_map.json").read_text())) == metrics["vocabulary"]
    assert metrics["parameters_unpruned"] - metrics["parameters"] == 16 * (metrics["teacher_vocabulary"] - metrics["vocabulary"])
    assert sorted(p.name for p in (out / "stages").iterdir()) == ["0-general", "1-task_relation", "2-task_prediction"]
    stages = {p.name: json.loads((p / "stage.json").read_text()) for p in (out / "stages").iterdir()}
    assert stages["0-general"]["data"] == "unlabeled" and stages["0-general"]["rows"] == 48
    assert stages["1-task_relation"]["data"] == "distilled" and stages["1-task_relation"]["rows"] > 240
    log = pd.read_csv(out / "train_log.csv")
    relation_rows = log[log["schedule_stage"] == "1-task_relation"].dropna(subset=["loss"])
    prediction_rows = log[log["schedule_stage"] == "2-task_prediction"]
    assert (relation_rows["loss_relation"] > 0).all() and "eval_accuracy" in prediction_rows
    assert prediction_rows["loss_soft"].notna().any() and prediction_rows["loss_hard"].notna().any()
    assert (out / "model" / "tokenizer.json").is_file()
    assert distill_stage.run(config, paths).skipped == ["tiny"]


def test_changing_a_later_stage_reuses_the_earlier_ones(sentiment_files, tiny_teacher, tmp_path):
    config, paths = _pipeline(tmp_path, sentiment_files, tiny_teacher, students=[TINY])
    distill_stage.run(config, paths)
    stage_json = paths.root / "students" / "tiny" / "stages" / "1-task_relation" / "stage.json"
    first = stage_json.stat().st_mtime_ns
    changed = dict(TINY, schedule=[*TINY["schedule"][:2], dict(TINY["schedule"][2], epochs=1)])
    config2 = config.model_copy(update={"students": [type(config.students[0]).model_validate(changed)]})
    distill_stage.run(config2, paths)
    assert stage_json.stat().st_mtime_ns == first  # not retrained
    prediction = json.loads((stage_json.parent.parent / "2-task_prediction" / "stage.json").read_text())
    assert [e for e in prediction["log"] if "eval_accuracy" in e][-1]["epoch"] == 1.0


@pytest.mark.parametrize("student, message", [
    (dict(TINY, schedule=[{"stage": "general", "losses": {"soft": 1.0}}]),
     r"schedule.0 \(general\): unlabeled text has no labels or teacher logits"),
    (dict(TINY, hidden=18, heads=2, relation={"heads": 4}),
     r"schedule.0 \(general\): relation.heads 4 does not divide hidden 18; this stage weighs the relation loss"),
    (dict(TINY, schedule=[{"stage": "task_prediction", "losses": {"soft": 0.0}}]), r"every loss weight is 0"),
])
def test_bad_transformer_config(sentiment_files, tmp_path, student, message):
    """One line naming the key and the stage; relation heads matter only to a stage that weighs the relation loss
    (`test_relation_heads_need_not_divide_a_student_without_relation_stages`)."""
    path = write_config(tmp_path / "c.yaml", {"task": file_task(sentiment_files), "augment": {},
                                              "students": [student]})
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_init_checkpoint_continues_another_student_of_the_same_run(sentiment_files, tiny_teacher, tmp_path,
                                                                    monkeypatch, capsys):
    """`checkpoint: ${TINYKD_RUNS:-runs}/<task>/students/<name>/model` follows --runs-dir (the CLI exports it), so a
    continued student reads its base from this run, not ./runs; without the base it is a clear error."""
    import yaml

    from tinykd import cli

    monkeypatch.delenv("TINYKD_RUNS", raising=False)
    _, paths = _pipeline(tmp_path, sentiment_files, tiny_teacher, students=[])
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "tiny").symlink_to(paths.root)
    prediction = {"stage": "task_prediction", "epochs": 1, "batch_size": 16, "learning_rate": 1e-3}
    base = dict(TINY, name="base", schedule=[prediction])
    more = dict(TINY, name="more", init="checkpoint", checkpoint="${TINYKD_RUNS:-runs}/tiny/students/base/model",
                schedule=[prediction])
    raw = yaml.safe_load((tmp_path / "c.yaml").read_text())
    path = write_config(tmp_path / "continued.yaml", raw | {"students": [base, more]})

    assert cli.main(["distill", "--config", str(path), "--runs-dir", str(runs)]) == 0
    metrics = json.loads((paths.root / "students" / "more" / "metrics.json").read_text())
    assert metrics["config"]["checkpoint"] == str(runs / "tiny" / "students" / "base" / "model")
    assert cli.main(["distill", "--config", str(path), "--runs-dir", str(runs)]) == 0
    assert "up to date" in capsys.readouterr().out  # nothing changed: neither retrains
    # Retraining the base (another learning rate) retrains the student continued from it, though its spec is unchanged.
    retrained_base = dict(base, schedule=[dict(prediction, learning_rate=2e-3)])
    write_config(path, raw | {"students": [retrained_base, more]})
    assert cli.main(["distill", "--config", str(path), "--runs-dir", str(runs)]) == 0
    again = json.loads((paths.root / "students" / "more" / "metrics.json").read_text())
    assert again["fingerprint"] != metrics["fingerprint"]

    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "tiny").mkdir(parents=True)
    for upstream in ("data", "augment", "teacher", "label"):
        (elsewhere / "tiny" / upstream).symlink_to(paths.root / upstream)
    capsys.readouterr()
    assert cli.main(["distill", "--config", str(path), "--runs-dir", str(elsewhere), "--student", "more"]) == 2
    message = capsys.readouterr().err
    assert f"students.more.checkpoint: {elsewhere}/tiny/students/base/model holds no saved model" in message


def test_relation_heads_need_not_divide_a_student_without_relation_stages(sentiment_files, tmp_path):
    """A 256-wide student trained on labels only is valid with the default 12 relation heads (12 does not divide 256)."""
    student = dict(TINY, hidden=256, heads=8, relation={"heads": 12},
                   schedule=[{"stage": "task_prediction", "losses": {"hard": 1.0}}])
    config = load_config(write_config(tmp_path / "c.yaml", {"task": file_task(sentiment_files), "augment": {},
                                                             "students": [student]}))
    assert config.students[0].hidden == 256
