"""Turns a YAML file (plus `--set key.path=value` overrides) into a validated `Config`.

Errors name the file, the line and the key path, e.g.
`configs/x.yaml:12: teacher.epochs: Input should be greater than 0 (got -1)`.
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from tinykd.config import Config
from tinykd.errors import ConfigError

_ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read, expand, override and validate one task config."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    text = path.read_text(encoding="utf-8")
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: malformed YAML: {getattr(err, 'problem', err)}") from None
    if root is None:
        raise ConfigError(f"{path}: config file is empty")
    lines = _key_lines(root)
    raw = yaml.safe_load(text)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}:1: the config must be a mapping of sections (task, teacher, ...)")
    written = copy.deepcopy(raw)  # as the user wrote it: `${VAR:-default}` kept, for configs written from this one
    raw = expand_env(raw)
    for item in overrides:
        _apply_override(raw, item)
        _apply_override(written, item)
        lines.setdefault(item.split("=", 1)[0], "--set")
    # The task name defaults to the config file's stem so that `runs/<stem>/` matches the Makefile.
    for tree in (raw, written):
        if isinstance(tree.get("task"), dict):
            tree["task"].setdefault("name", path.stem)
    try:
        config = Config.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_describe(err, path, lines, raw)) from None
    config._written = written
    return config


def _key_lines(node: yaml.Node, prefix: str = "") -> dict[str, int]:
    """Map each dotted key path (list items by index) to its 1-based line in the YAML file."""
    lines: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            dotted = f"{prefix}{key_node.value}"
            lines[dotted] = key_node.start_mark.line + 1
            lines.update(_key_lines(value_node, dotted + "."))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            dotted = f"{prefix}{index}"
            lines[dotted] = item.start_mark.line + 1
            lines.update(_key_lines(item, dotted + "."))
    return lines


def expand_env(value: Any) -> Any:
    """Expand `${VAR}` and `${VAR:-default}` in every string, so data paths can be overridden."""
    if isinstance(value, str):
        return _ENV_PATTERN.sub(lambda m: os.environ.get(m.group(1)) or (m.group(2) or ""), value)
    if isinstance(value, dict):
        return {k: expand_env(v) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v) for v in value]
    return value


def _apply_override(raw: dict, item: str) -> None:
    """Apply one `key.path=value` override; the value is parsed as a YAML scalar or list."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected key.path=value")
    dotted, text = item.split("=", 1)
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        raise ConfigError(f"--set {item!r}: the value is not valid YAML") from None
    keys = dotted.split(".")
    node = raw
    for depth, key in enumerate(keys[:-1]):
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"--set {dotted}: {'.'.join(keys[: depth + 1])} is not a section")
        node = child
    node[keys[-1]] = value


def _user_path(loc: tuple, raw: Any) -> str:
    """The key path as the user wrote it. pydantic puts the tag of a discriminated union into `loc`
    (task.source.files.train, augment.ops.0.pos.p, students.0.transformer.hidden); the tag is a value
    in the YAML, not a key: drop it."""
    keys, node = [], raw
    for part in loc:
        if isinstance(node, dict) and part not in node and part in (node.get("type"), node.get("op"), node.get("kind")):
            continue
        keys.append(str(part))
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            node = None
    return ".".join(keys)


def _describe(err: ValidationError, path: Path, lines: dict[str, int], raw: Any) -> str:
    """One line per problem: file:line: key.path: message."""
    out = []
    for problem in err.errors():
        dotted = _user_path(problem["loc"], raw)
        line = _nearest_line(dotted, lines)
        where = f"{path}:{line}" if isinstance(line, int) else f"{path} ({line})" if line else str(path)
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "extra_forbidden":
            message = "unknown key (check the spelling; see README 'Config keys')"
        elif problem["type"] == "missing":
            message = "required key is missing"
        elif "input" in problem and not isinstance(problem["input"], (dict, list)):
            message += f" (got {problem['input']!r})"
        out.append(f"{where}: {dotted or '<root>'}: {message}" if dotted else f"{where}: {message}")
    return "\n".join(out)


def _nearest_line(dotted: str, lines: dict[str, int]) -> int | str | None:
    """The line of the key itself, else of its closest parent (a missing key is reported at its section)."""
    parts = dotted.split(".")
    while parts:
        key = ".".join(parts)
        if key in lines:
            return lines[key]
        parts.pop()
    return None
