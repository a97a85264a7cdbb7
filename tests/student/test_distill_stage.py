"""The distill stage on the synthetic cue-word task: gold-only and distilled small students."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.conftest import file_task, write_config
from tinykd import data_stage
from tinykd.artifacts import RunPaths
from tinykd.augment import stage as augment_stage
from tinykd.config import AblationConfig, CompareConfig
from tinykd.config_loading import load_config
from tinykd.errors import ConfigError
from tinykd.student import stage as distill_stage
from tinykd.teacher import finetune, labeling

STUDENTS = [
    {"name": "bow-gold", "kind": "bow", "data": "gold", "losses": {"hard": 1.0, "soft": 0.0}, "epochs": 10,
     "min_freq": 1, "embedding_dim": 16, "hidden_size": 16, "batch_size": 16, "learning_rate": 0.01, "patience": 10},
    {"name": "cnn-distilled", "kind": "cnn", "tokens": "char", "epochs": 4, "min_freq": 1, "embedding_dim": 16,
     "num_filters": 8, "hidden_size": 16, "temperature": 2.0},
    {"name": "lstm-soft-only", "kind": "lstm", "epochs": 3, "min_freq": 1, "embedding_dim": 16, "hidden_size": 8,
     "augmented_target": "soft", "losses": {"hard": 1.0, "soft": 0.5}, "segmenter": "rjieba"},
]


def _pipeline(tmp_path, files, tiny_teacher, students=STUDENTS):
    config = load_config(write_config(tmp_path / "c.yaml", {
        "task": file_task(files),
        "teacher": {"base": str(tiny_teacher), "epochs": 6, "batch_size": 16, "learning_rate": 3e-3},
        "augment": {"multiplier": 2, "unk_token": "<unk>"},
        "students": students,
    }))
    paths = RunPaths(tmp_path / "run")
    for stage in (data_stage, finetune, augment_stage, labeling):
        stage.run(config, paths)
    return config, paths


def test_students_learn_and_write_artifacts(sentiment_files, tiny_teacher, tmp_path):
    config, paths = _pipeline(tmp_path, sentiment_files, tiny_teacher)
    result = distill_stage.run(config, paths)
    assert set(result.accuracy) == {"bow-gold", "cnn-distilled", "lstm-soft-only"}
    assert result.accuracy["bow-gold"] >= 0.9, result.summary()  # the cue word decides the label
    for name in result.accuracy:
        out = paths.root / "students" / name
        metrics = json.loads((out / "metrics.json").read_text())
        assert (out / "model" / "config.json").is_file() and (out / "model" / "tinykd_tokenizer.json").is_file()
        log = pd.read_csv(out / "train_log.csv")
        assert {"epoch", "loss", "hard", "dev_accuracy"} <= set(log.columns)
        assert metrics["best_epoch"] == int(log.loc[log["dev_accuracy"].idxmax(), "epoch"])
    gold = json.loads((paths.root / "students" / "bow-gold" / "metrics.json").read_text())
    distilled = json.loads((paths.root / "students" / "cnn-distilled" / "metrics.json").read_text())
    assert gold["train_rows"] == {"gold": 240, "augmented": 0, "gold_repeats": 1}
    assert distilled["train_rows"]["gold"] == 240 and distilled["train_rows"]["augmented"] > 240
    assert "soft" in pd.read_csv(paths.root / "students" / "cnn-distilled" / "train_log.csv").columns
    segmenters = {name: json.loads((paths.root / "students" / name / "model" / "tinykd_tokenizer.json").read_text())
                  ["segmenter"] for name in ("bow-gold", "lstm-soft-only")}
    assert segmenters == {"bow-gold": "jieba", "lstm-soft-only": "rjieba"}  # what serving will split with
    assert distill_stage.run(config, paths).skipped == ["bow-gold", "cnn-distilled", "lstm-soft-only"]


def test_distilled_student_needs_an_augment_section(sentiment_files, tmp_path):
    path = write_config(tmp_path / "c.yaml", {"task": file_task(sentiment_files),
                                              "students": [{"name": "b", "kind": "bow"}]})
    with pytest.raises(ConfigError, match=r"students.0 \(b\): data 'distilled' needs an augment section"):
        load_config(path)


def test_comparison_trains_gold_twins_over_seeds(sentiment_files, tiny_teacher, tmp_path):
    from tinykd.student.experiments import comparison

    students = [{"name": "bow", "kind": "bow", "epochs": 2, "min_freq": 1, "embedding_dim": 8, "hidden_size": 8}]
    config, paths = _pipeline(tmp_path, sentiment_files, tiny_teacher, students=students)
    config = config.model_copy(update={"compare": CompareConfig(gold_epochs=3)})
    result = comparison.run(config, paths)
    runs = pd.read_csv(paths.root / "compare" / "runs.csv")
    assert len(runs) == 6 and set(runs["variant"]) == {"gold", "distilled"} and set(runs["seed"]) == {0, 1, 2}
    row = result.table.iloc[0]
    gold = runs[runs["variant"] == "gold"]["test_accuracy"]
    assert row["gold_mean"] == pytest.approx(gold.mean()) and row["gold_std"] == pytest.approx(gold.std())
    assert row["gain"] == pytest.approx(row["distilled_mean"] - row["gold_mean"]) and row["seeds"] == 3
    gold_metrics = json.loads((paths.root / "compare" / "bow-gold-seed1" / "metrics.json").read_text())
    assert gold_metrics["train_rows"]["augmented"] == 0 and gold_metrics["config"]["losses"]["soft"] == 0.0
    assert gold_metrics["config"]["epochs"] == 3  # compare.gold_epochs; the distilled twin keeps its own 2
    distilled_metrics = json.loads((paths.root / "compare" / "bow-distilled-seed1" / "metrics.json").read_text())
    assert distilled_metrics["config"]["epochs"] == 2
    markdown = (paths.root / "compare" / "comparison.md").read_text()
    assert "| bow (bow) | distilled | 3 |" in markdown and "±" in markdown
    assert row["data"] == "distilled" and set(runs["dev_accuracy"].between(0, 1)) == {True}


def test_a_comparison_of_one_student_keeps_the_others_rows(sentiment_files, tiny_teacher, tmp_path):
    """`compare --student b` leaves a's rows as they are (the CLI's promise); a plain run drops a student the
    config no longer lists."""
    from tinykd.cli import main

    small = {"kind": "bow", "epochs": 1, "min_freq": 1, "embedding_dim": 8, "hidden_size": 8}
    students = [{"name": "a", **small}, {"name": "b", **small}]
    config, paths = _pipeline(tmp_path, sentiment_files, tiny_teacher, students=students)
    args = ["--config", str(tmp_path / "c.yaml"), "--runs-dir", str(tmp_path / "runs"), "--set", "compare.seeds=[0]"]
    runs_dir = tmp_path / "runs" / config.task.name
    runs_dir.parent.mkdir()
    paths.root.rename(runs_dir)
    assert main(["compare", *args, "--student", "a"]) == 0
    assert main(["compare", *args, "--student", "b"]) == 0
    table = pd.read_csv(runs_dir / "compare" / "comparison.csv")
    assert list(table["student"]) == ["a", "b"] and len(pd.read_csv(runs_dir / "compare" / "runs.csv")) == 4
    assert main(["compare", *args, "--set", "students=[{name: b, kind: bow, epochs: 1, min_freq: 1, "
                                          "embedding_dim: 8, hidden_size: 8}]"]) == 0
    assert list(pd.read_csv(runs_dir / "compare" / "comparison.csv")["student"]) == ["b"]


def test_comparison_data_ablation_trains_one_gold_twin_per_seed(sentiment_files, tiny_teacher, tmp_path):
    from tinykd.student.experiments import comparison

    students = [{"name": "bow", "kind": "bow", "epochs": 1, "min_freq": 1, "embedding_dim": 8, "hidden_size": 8}]
    config, paths = _pipeline(tmp_path, sentiment_files, tiny_teacher, students=students)
    config = config.model_copy(update={"compare": CompareConfig(seeds=[0, 1], data=["augmented", "distilled"])})
    result = comparison.run(config, paths)
    runs = pd.read_csv(paths.root / "compare" / "runs.csv")
    assert sorted(runs["variant"].value_counts().items()) == [("augmented", 2), ("distilled", 2), ("gold", 2)]
    assert list(result.table["data"]) == ["augmented", "distilled"]
    gold = runs[runs["variant"] == "gold"]["test_accuracy"].mean()
    assert list(result.table["gold_mean"]) == pytest.approx([gold, gold])  # one twin serves every data kind
    for kind in ("augmented", "distilled"):
        trained = json.loads((paths.root / "compare" / f"bow-{kind}-seed1" / "metrics.json").read_text())
        assert trained["config"]["data"] == kind and trained["train_rows"]["augmented"] > 0
    assert "| bow (bow) | augmented | 2 |" in (paths.root / "compare" / "comparison.md").read_text()


def test_comparison_data_kinds_are_checked_at_load(sentiment_files, tmp_path):
    path = write_config(tmp_path / "c.yaml", {"task": file_task(sentiment_files), "augment": {},
                                              "students": [{"name": "b", "kind": "bow"}],
                                              "compare": {"data": ["augmented", "pool"]}})
    with pytest.raises(ConfigError, match=r"compare.data: data 'pool' needs an unlabeled pool \(augment.unlabeled\)"):
        load_config(path)
    path = write_config(tmp_path / "d.yaml", {"task": file_task(sentiment_files), "augment": {},
                                              "students": [{"name": "b", "kind": "bow"}],
                                              "compare": {"data": ["gold"]}})
    with pytest.raises(ConfigError, match=r"compare.data"):
        load_config(path)


def test_distilled_student_needs_labelled_augmented_rows(sentiment_files, tmp_path):
    path = write_config(tmp_path / "c.yaml", {"task": file_task(sentiment_files), "augment": {},
                                              "label": {"splits": ["train", "dev", "test"]},
                                              "students": [{"name": "b", "kind": "bow"}]})
    with pytest.raises(ConfigError, match=r"students.0 \(b\): data 'distilled' needs 'augmented' in label.splits"):
        load_config(path)


def test_ablation_trains_each_op_alone_and_all_ops(sentiment_files, tiny_teacher, tmp_path):
    from tinykd.student.experiments import ablation

    students = [{"name": "bow", "kind": "bow", "epochs": 2, "min_freq": 1, "embedding_dim": 8, "hidden_size": 8}]
    config, paths = _pipeline(tmp_path, sentiment_files, tiny_teacher, students=students)
    config = config.model_copy(update={"ablation": AblationConfig(student="bow", seeds=[0, 1])})
    result = ablation.run(config, paths)
    augmented = pd.read_parquet(paths.augmented)
    by_op = augmented["op"].value_counts()
    equal = round(by_op.mean())
    assert result.table["variant"].tolist() == ["gold only", "unk only", "pos only", "nsample only",
                                                f"all ops, {equal} rows", "all ops"]
    rows = dict(zip(result.table["variant"], result.table["augmented_rows"]))
    assert rows["gold only"] == 0 and rows["all ops"] == len(augmented) and rows[f"all ops, {equal} rows"] == equal
    for op in ("unk", "pos", "nsample"):
        assert rows[f"{op} only"] == by_op[op]
    runs = pd.read_csv(paths.root / "ablation" / "runs.csv")
    assert len(runs) == 12 and set(runs["seed"]) == {0, 1}
    assert result.table.loc[0, "gain"] == 0.0
    assert "| unk only |" in (paths.root / "ablation" / "ablation.md").read_text()


def test_augment_ops_filter_and_row_cap(sentiment_files, tiny_teacher, tmp_path):
    students = [{"name": "pos", "kind": "bow", "epochs": 1, "min_freq": 1, "augment_ops": ["pos"]},
                {"name": "capped", "kind": "bow", "epochs": 1, "min_freq": 1, "max_augmented_rows": 50,
                 "gold_repeats": 3}]
    config, paths = _pipeline(tmp_path, sentiment_files, tiny_teacher, students=students)
    distill_stage.run(config, paths)
    by_op = pd.read_parquet(paths.augmented)["op"].value_counts()
    rows = {name: json.loads((paths.root / "students" / name / "metrics.json").read_text())["train_rows"]["augmented"]
            for name in ("pos", "capped")}
    assert rows == {"pos": by_op["pos"], "capped": 50}
    capped = json.loads((paths.root / "students" / "capped" / "metrics.json").read_text())["train_rows"]
    assert capped == {"gold": 240, "augmented": 50, "gold_repeats": 3}


@pytest.mark.parametrize("extra, message", [
    ({"students": [{"name": "b", "kind": "bow", "augment_ops": ["swap"]}]},
     r"students.0 \(b\): augment_ops \['swap'\] are not configured ops \(augment.ops makes \['unk', 'pos', 'nsample'\]\)"),
    ({"students": [{"name": "b", "kind": "bow", "data": "gold"}], "ablation": {"student": "b"}},
     r"ablation.student: 'b' is not a distilled student \(students with data 'distilled': \[\]\)"),
])
def test_bad_ablation_config(sentiment_files, tmp_path, extra, message):
    path = write_config(tmp_path / "c.yaml", {"task": file_task(sentiment_files), "augment": {}, **extra})
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_cli_student_option_distills_only_the_named_students(sentiment_files, tiny_teacher, tmp_path, capsys):
    from tinykd.cli import main

    config, _ = _pipeline(tmp_path, sentiment_files, tiny_teacher)
    (tmp_path / "runs").mkdir()
    (tmp_path / "run").rename(tmp_path / "runs" / config.task.name)  # where the CLI looks
    args = ["--config", str(tmp_path / "c.yaml"), "--runs-dir", str(tmp_path / "runs")]
    assert main(["distill", *args, "--student", "bow-gold"]) == 0
    assert [p.name for p in (tmp_path / "runs" / config.task.name / "students").iterdir()] == ["bow-gold"]
    assert main(["distill", *args, "--student", "nope"]) == 2
    assert "--student nope: not in the config's students ['bow-gold', 'cnn-distilled', 'lstm-soft-only']" in (
        capsys.readouterr().err)
    assert main(["label", *args, "--student", "bow-gold"]) == 2
