"""`data: gold | augmented | pool | distilled`: each student trains on exactly the rows its kind names, for small
students (train_rows in metrics.json) and transformer schedule stages alike; a kind the config cannot feed fails
when the config loads. A named pool source (op `pool:<name>`) is pool data, told apart from `pool` by augment_ops."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.conftest import file_task, install_as_teacher, sentiment_rows, write_config
from tinykd import data_stage
from tinykd.artifacts import RunPaths
from tinykd.augment import stage as augment_stage
from tinykd.config.training_data import TRAINING_DATA
from tinykd.config_loading import load_config
from tinykd.errors import ConfigError
from tinykd.student import stage as distill_stage
from tinykd.teacher import labeling

SMALL = {"kind": "bow", "epochs": 1, "min_freq": 1, "embedding_dim": 8, "hidden_size": 8}


def _sections(tmp_path, files, students, **augment) -> dict:
    pool = tmp_path / "pool.tsv"
    pool.write_text("text_a\n" + "".join(f"{text}\n" for _, text in sentiment_rows(60, seed=7)), encoding="utf-8")
    return {"task": file_task(files),
            "augment": {"multiplier": 1, "unk_token": "<unk>", "unlabeled": [{"path": str(pool)}]} | augment,
            "students": students}


@pytest.fixture
def labelled_run(sentiment_files, tiny_teacher, tmp_path):
    """A run with ops and pool rows labelled by a stand-in teacher, and the row count of each `op`."""
    students = [
        {"name": "gold", "data": "gold", **SMALL},
        {"name": "augmented", "data": "augmented", **SMALL},
        {"name": "pool", "data": "pool", **SMALL},
        {"name": "distilled", **SMALL},
        {"name": "unk-only", "augment_ops": ["unk"], **SMALL},
        {"name": "pool-capped", "data": "pool", "max_augmented_rows": 5, "gold_repeats": 2, **SMALL},
    ]
    config = load_config(write_config(tmp_path / "c.yaml", _sections(tmp_path, sentiment_files, students)))
    paths = RunPaths(tmp_path / "run")
    data_stage.run(config, paths)
    install_as_teacher(paths, tiny_teacher)
    augment_stage.run(config, paths)
    labeling.run(config, paths)
    by_op = pd.read_parquet(paths.labels("augmented"))["op"].value_counts().to_dict()
    return config, paths, by_op


def test_small_students_train_on_exactly_their_rows(labelled_run):
    config, paths, by_op = labelled_run
    pool_rows = json.loads(paths.augment_summary.read_text())["pool_rows"]
    assert by_op["pool"] == pool_rows > 10  # the label stage labels the pool rows with the augmented ones
    op_rows = sum(n for op, n in by_op.items() if op != "pool")
    distill_stage.run(config, paths)
    train_rows = {s.name: json.loads((paths.student_dir(s.name) / "metrics.json").read_text())["train_rows"]
                  for s in config.students}
    assert train_rows == {
        "gold": {"gold": 240, "augmented": 0, "gold_repeats": 1},
        "augmented": {"gold": 240, "augmented": op_rows, "gold_repeats": 1},
        "pool": {"gold": 240, "augmented": pool_rows, "gold_repeats": 1},
        "distilled": {"gold": 240, "augmented": op_rows + pool_rows, "gold_repeats": 1},
        "unk-only": {"gold": 240, "augmented": by_op["unk"], "gold_repeats": 1},
        "pool-capped": {"gold": 240, "augmented": 5, "gold_repeats": 2},
    }


def test_transformer_stage_rows_follow_the_same_kinds(labelled_run):
    from tinykd.student.trainers.transformer_distill import _Tables

    config, paths, by_op = labelled_run
    tables = _Tables(config, paths)
    pool_rows = by_op["pool"]
    op_rows = sum(by_op.values()) - pool_rows
    counts = {data: len(tables.rows(data)) for data in ("gold", "augmented", "pool", "distilled")}
    assert counts == {"gold": 240, "augmented": 240 + op_rows, "pool": 240 + pool_rows,
                      "distilled": 240 + op_rows + pool_rows}
    pool = tables.rows("pool").iloc[240:]
    assert set(pool["op"]) == {"pool"} and (pool["target"] >= 0).all()  # the teacher's argmax


@pytest.mark.parametrize("students, augment, message", [
    ([{"name": "b", "kind": "bow", "data": "pool"}], {"unlabeled": []},
     r"students.0 \(b\): data 'pool' needs an unlabeled pool \(augment.unlabeled\)"),
    ([{"name": "b", "kind": "bow", "data": "augmented"}], {"multiplier": 0},
     r"students.0 \(b\): data 'augmented' needs augmentation-op rows, but augment.multiplier is 0"),
    ([{"name": "b", "kind": "bow", "data": "pool", "augment_ops": ["unk"]}], {},
     r"students.0 \(b\): augment_ops \['unk'\] select no rows of data 'pool'"),
    ([{"name": "b", "kind": "bow", "augment_ops": ["pool"]}], {"unlabeled": []},
     r"augment_ops \['pool'\] are not configured ops \(augment.ops makes \['unk', 'pos', 'nsample'\]\)"),
    ([{"name": "t", "kind": "transformer", "schedule": [{"stage": "task_prediction", "data": "pool"}]}],
     {"unlabeled": []}, r"students.0 \(t\): schedule.0 \(task_prediction\): data 'pool' needs an unlabeled pool"),
])
def test_a_kind_the_config_cannot_feed_is_refused(sentiment_files, tmp_path, students, augment, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write_config(tmp_path / "c.yaml", _sections(tmp_path, sentiment_files, students, **augment)))


def test_pool_only_config_with_pool_students(sentiment_files, tmp_path):
    students = [{"name": "b", "kind": "bow", "data": "pool", "augment_ops": ["pool"]}, {"name": "d", "kind": "cnn"}]
    config = load_config(write_config(tmp_path / "c.yaml", _sections(tmp_path, sentiment_files, students,
                                                                     multiplier=0)))
    assert config.augment.row_ops == ["pool"]


def _named_pool_sections(tmp_path, files, students) -> dict:
    """One pool file given twice, split by domain: the `other` rows as op `pool`, the `waimai` rows as `pool:waimai`."""
    pool = tmp_path / "pool.tsv"
    texts = [text for _, text in sentiment_rows(80, seed=7)]
    pool.write_text("text_a\tdomain\n" + "".join(f"{text}\t{'waimai' if i % 3 == 0 else 'other'}\n"
                                                 for i, text in enumerate(texts)), encoding="utf-8")
    source = {"path": str(pool), "domain_column": "domain"}
    return {"task": file_task(files),
            "augment": {"multiplier": 1, "unk_token": "<unk>",
                        "unlabeled": [source | {"exclude_domains": ["waimai"]},
                                      source | {"domains": ["waimai"], "name": "waimai"}]},
            "students": students}


def test_a_named_pool_is_pool_data_and_augment_ops_tell_it_apart(sentiment_files, tmp_path):
    students = [
        {"name": "augmented", "data": "augmented", **SMALL},
        {"name": "pool", "data": "pool", **SMALL},
        {"name": "distilled", **SMALL},
        {"name": "unnamed-pool", "data": "pool", "augment_ops": ["pool"], **SMALL},
        {"name": "waimai", "data": "pool", "augment_ops": ["pool:waimai"], **SMALL},
        {"name": "unk-and-unnamed", "augment_ops": ["unk", "pool"], **SMALL},
    ]
    config = load_config(write_config(tmp_path / "c.yaml", _named_pool_sections(tmp_path, sentiment_files, students)))
    assert config.augment.row_ops == ["unk", "pos", "nsample", "pool", "pool:waimai"]
    for name, kind in TRAINING_DATA.items():
        assert kind.keeps("pool:waimai") == kind.keeps("pool") == kind.pool_rows, name
    assert not TRAINING_DATA["augmented"].keeps("pool:waimai") and TRAINING_DATA["distilled"].keeps("pool:waimai")

    paths = RunPaths(tmp_path / "run")
    data_stage.run(config, paths)
    augment_stage.run(config, paths)
    augmented = pd.read_parquet(paths.augmented)
    by_op = augmented["op"].value_counts().to_dict()
    assert by_op["pool"] > 10 and by_op["pool:waimai"] > 5
    assert set(augmented.loc[augmented["op"] == "pool:waimai", "domain"]) == {"waimai"}
    assert "waimai" not in set(augmented.loc[augmented["op"] == "pool", "domain"])

    # The rows each small student trains on (what distill_one feeds the trainer).
    chosen = {s.name: distill_stage._augmented_rows(s, augmented)["op"].value_counts().to_dict()
              for s in config.small_students}
    ops = {op: n for op, n in by_op.items() if op in ("unk", "pos", "nsample")}
    assert chosen == {
        "augmented": ops,
        "pool": {"pool": by_op["pool"], "pool:waimai": by_op["pool:waimai"]},
        "distilled": by_op,
        "unnamed-pool": {"pool": by_op["pool"]},
        "waimai": {"pool:waimai": by_op["pool:waimai"]},
        "unk-and-unnamed": {"unk": by_op["unk"], "pool": by_op["pool"]},
    }
    unnamed = distill_stage._augmented_rows(config.small_students[3], augmented)
    assert unnamed["text_a"].tolist() == augmented.loc[augmented["op"] == "pool", "text_a"].tolist()


@pytest.mark.parametrize("student, message", [
    ({"name": "b", "kind": "bow", "augment_ops": ["pool", "pool:unknown"]},
     r"students.0 \(b\): augment_ops \['pool:unknown'\] are not configured ops \(augment.ops makes \['unk', 'pos', "
     r"'nsample'\], augment.unlabeled makes \['pool', 'pool:waimai'\]\)"),
    ({"name": "b", "kind": "bow", "data": "augmented", "augment_ops": ["pool:waimai"]},
     r"students.0 \(b\): augment_ops \['pool:waimai'\] select no rows of data 'augmented'"),
])
def test_an_augment_op_of_no_pool_source_is_refused(sentiment_files, tmp_path, student, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write_config(tmp_path / "c.yaml", _named_pool_sections(tmp_path, sentiment_files, [student])))
