"""The search section is checked when the config loads: a bad path, range or value names search.space.<i>."""

from __future__ import annotations

import optuna
import pytest

from tests.search.tiny_search import SPACE, config_file, search_section
from tinykd.config_loading import load_config
from tinykd.errors import ConfigError
from tinykd.search.space import suggest, with_values


def _load(tmp_path, sentiment_files, space=None, **search):
    return load_config(config_file(tmp_path, sentiment_files, search=search_section(**search, space=space or SPACE)))


def test_a_valid_space_loads_and_names_list_items_by_name_or_index(tmp_path, sentiment_files):
    config = _load(tmp_path, sentiment_files, space=[
        {"path": "students.bow.losses.hard", "type": "float", "low": 0.5, "high": 1.0},
        {"path": "students.0.kernel_sizes", "type": "categorical", "choices": [[2, 3], [3, 4, 5]]}])
    assert [p.path for p in config.search.space] == ["students.bow.losses.hard", "students.0.kernel_sizes"]
    trial = optuna.create_study().ask()
    values = {p.path: suggest(trial, p) for p in config.search.space}
    assert values["students.0.kernel_sizes"] in ([2, 3], [3, 4, 5])  # a list choice comes back as a list
    trial_config = with_values(config, values)
    assert trial_config.students[0].losses.hard == values["students.bow.losses.hard"]
    assert trial_config.students[0].kernel_sizes == values["students.0.kernel_sizes"]
    assert config.students[0].kernel_sizes == [3, 4, 5]  # the parent config is untouched


@pytest.mark.parametrize("path,message", [
    ("students.bow.lerning_rate", r"search\.space\.0\.path: students\.bow\.lerning_rate: unknown key 'lerning_rate' "
                                  r"in students\.0 \(its keys: name, kind, "),
    ("students.cnn.epochs", r"search\.space\.0\.path: students\.cnn\.epochs: students has no item named 'cnn' "
                            r"\(names: \['bow'\]"),
    ("students.3.epochs", r"search\.space\.0\.path: students\.3\.epochs: students has 1 items; index 3 is out of range"),
    ("teacher.epochs", r"search\.space\.0\.path: teacher\.epochs is not a key of the searched student \(search\.student "
                       r"'bow'\): trials share the parent run's data, teacher"),
    ("students.bow.name", r"search\.space\.0\.path: students\.bow\.name is not a key of the searched student"),
    ("students.bow.epochs.x", r"search\.space\.0\.path: students\.bow\.epochs\.x: students\.0\.epochs is a value \(3\)"),
])
def test_an_unknown_or_foreign_path_is_a_config_error_naming_it(tmp_path, sentiment_files, path, message):
    with pytest.raises(ConfigError, match=message):
        _load(tmp_path, sentiment_files, space=[{"path": path, "type": "int", "low": 1, "high": 4}])


@pytest.mark.parametrize("param,message", [
    ({"type": "float", "low": 0.5, "high": 0.5}, r"c\.yaml:\d+: search\.space\.0: students\.bow\.dropout: empty range: "
                                                 r"low 0\.5 must be below high 0\.5"),
    ({"type": "float", "low": 0.9, "high": 0.1}, r"search\.space\.0: students\.bow\.dropout: empty range"),
    ({"type": "categorical", "choices": []}, r"search\.space\.0: students\.bow\.dropout: empty choices"),
    ({"type": "log_float", "low": 0.0, "high": 0.5}, r"search\.space\.0: .*log_float range needs low > 0"),
    ({"type": "float", "low": 0.1}, r"search\.space\.0: .*a float range needs low and high"),
    ({"type": "int", "low": 0.5, "high": 3}, r"search\.space\.0: .*an int range needs integer low, high and step"),
])
def test_an_empty_or_malformed_range_is_a_config_error_with_its_line(tmp_path, sentiment_files, param, message):
    with pytest.raises(ConfigError, match=message):
        _load(tmp_path, sentiment_files, space=[{"path": "students.bow.dropout", **param}])


@pytest.mark.parametrize("param,message", [
    # a value the key's own type refuses: epochs is an int, dropout < 1, pooling is max/mean
    ({"path": "students.bow.epochs", "type": "float", "low": 1.5, "high": 4.0},
     r"search\.space\.0: students\.bow\.epochs = 1\.5 makes an invalid config: Input should be a valid integer"),
    ({"path": "students.bow.dropout", "type": "float", "low": 0.1, "high": 1.5},
     r"search\.space\.0: students\.bow\.dropout = 1\.5 makes an invalid config: Input should be less than 1"),
    ({"path": "students.bow.pooling", "type": "categorical", "choices": ["max", "sum"]},
     r"search\.space\.0: students\.bow\.pooling = 'sum' makes an invalid config: Input should be 'max' or 'mean'"),
])
def test_a_value_of_the_wrong_type_is_a_config_error(tmp_path, sentiment_files, param, message):
    with pytest.raises(ConfigError, match=message):
        _load(tmp_path, sentiment_files, space=[param])


def test_other_search_keys_are_checked(tmp_path, sentiment_files):
    with pytest.raises(ConfigError, match=r"search\.student: 'cnn' is not a student name \(known: \['bow'\]\)"):
        _load(tmp_path, sentiment_files, student="cnn")
    with pytest.raises(ConfigError, match=r"search: objectives \['latency_ms'\]: expected one of"):
        _load(tmp_path, sentiment_files, objectives=["latency_ms"])
    with pytest.raises(ConfigError, match=r"search: storage: expected a URL starting with one of"):
        _load(tmp_path, sentiment_files, storage="mysql://db/x")
    with pytest.raises(ConfigError, match=r"search.backend onnx-optimized applies to transformers, not the bow student"):
        _load(tmp_path, sentiment_files, backend="onnx-optimized")
