"""The search space as Optuna suggestions, and a trial's config: the task config with the suggested values set.

The space was checked when the config loaded (`Config._search_space_applies`): every path is a key of the
searched student and both ends of each range make a valid config. A trial's values are set into a complete
dump of the config and validated again, so the trial runs a config `load_config` would accept.
"""

from __future__ import annotations

import json
from typing import Any

import optuna

from tinykd.config import Config, InvalidValues, SearchParam, config_with_values
from tinykd.errors import ConfigError
from tinykd.key_paths import resolve


def _scalar(value: Any) -> bool:
    """What Optuna stores as a categorical choice as it is (anything else travels as JSON text)."""
    return value is None or isinstance(value, (bool, int, float, str))


def suggest(trial: optuna.Trial, param: SearchParam) -> Any:
    """The trial's value for one parameter; the Optuna parameter is named by the key path."""
    if param.type == "categorical":
        # Optuna stores only scalars as choices; a list choice (kernel sizes) travels as its JSON text.
        if all(map(_scalar, param.choices)):
            return trial.suggest_categorical(param.path, param.choices)
        return json.loads(trial.suggest_categorical(param.path, [json.dumps(c) for c in param.choices]))
    if param.type == "int":
        return trial.suggest_int(param.path, int(param.low), int(param.high), step=int(param.step or 1))
    return trial.suggest_float(param.path, param.low, param.high, step=param.step, log=param.type == "log_float")


def decode(param: SearchParam, stored: Any) -> Any:
    """A value as Optuna stored it (a trial's `params`) back to the config value."""
    if param.type == "categorical" and isinstance(stored, str) and stored not in param.choices:
        return json.loads(stored)
    return stored


def hand_set(config: Config) -> dict[str, Any]:
    """The searched keys at their values in the config as written, as Optuna parameters (the baseline trial)."""
    raw = config.model_dump(mode="json")
    params = {}
    for param in config.search.space:
        value = resolve(raw, param.path)[1]
        params[param.path] = value if param.type != "categorical" or _scalar(value) else json.dumps(value)
    return params


def with_values(config: Config, values: dict[str, Any]) -> Config:
    """`config` with each `path -> value` set; a config error names the path and value."""
    try:
        return config_with_values(config.model_dump(mode="json"), values)
    except InvalidValues as err:
        raise ConfigError(f"search: the values {values} make an invalid config: {err.location}: {err.message}") from None
