"""Turns a YAML file (plus `--set key.path=value` overrides) into a validated `Config`.

Errors name the file, the line and the key path, e.g.
`configs/x.yaml:12: teacher.epochs: Input should be greater than 0 (got -1)`.
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from tinykd.config import Config
from tinykd.errors import ConfigError
from tinykd.key_paths import KeyPathError, dotted, located, nearest_line, set_key

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
        _apply_override(written, item)
        key_path = _apply_override(raw, item)
        lines = {k: v for k, v in lines.items() if not k.startswith(key_path + ".")} | {key_path: "--set"}
        keys = key_path.split(".")
        for depth in range(1, len(keys)):  # a section the override created is reported at --set too
            lines.setdefault(".".join(keys[:depth]), "--set")
    # The task name defaults to the config file's stem so that `runs/<stem>/` matches the Makefile.
    for tree in (raw, written):
        if isinstance(tree.get("task"), dict):
            tree["task"].setdefault("name", path.stem)
    try:
        config = Config.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_describe(err, path, lines, raw)) from None
    config._written, config._source, config._lines = written, str(path), lines
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


def _apply_override(raw: dict, item: str) -> str:
    """Apply one `key.path=value` override (list items by name or index; the value parsed as YAML); the
    path with list items by index, as `_key_lines` names it."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected key.path=value")
    path, text = item.split("=", 1)
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        raise ConfigError(f"--set {item!r}: the value is not valid YAML") from None
    try:
        return dotted(set_key(raw, path, value, new_section=lambda keys: _absent_section(raw, keys)))
    except KeyPathError as err:
        raise ConfigError(f"--set {path}: {err}") from None


def _absent_section(raw: dict, keys: list[str | int]) -> dict | list:
    """What `--set` creates for a section the YAML leaves out: where the schema declares a list, its default
    (so `students.tiny.schedule.1.epochs=2` sets the default schedule's second stage, and `students.bow...`
    on a config without students says there is no student 'bow'); else {} (validation fills in defaults)."""
    annotation: Any = Config
    node: Any = raw
    field = None
    for key in keys:
        if isinstance(key, int) and get_origin(annotation) is list:
            child = get_args(annotation)[0]
        elif isinstance(key, str) and isinstance(annotation, type) and issubclass(annotation, BaseModel) \
                and key in annotation.model_fields:
            field = annotation.model_fields[key]
            child = field.annotation
        else:
            return {}
        node = node.get(key) if isinstance(node, dict) else node[key] if isinstance(node, list) else None
        annotation = _concrete(child, node)
    if field is None or get_origin(annotation) is not list:
        return {}
    default = field.get_default(call_default_factory=True)
    return [item.model_dump(mode="json", exclude_unset=True) if isinstance(item, BaseModel) else item
            for item in (default if isinstance(default, list) else [])]


def _concrete(annotation: Any, node: Any) -> Any:
    """The type a value of `annotation` has: `X | None` -> X; a tagged union (students' kinds, augment ops)
    -> the member whose tag (`kind`, `op`, `type`) the YAML item names; None when it cannot be told."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) not in (Union, UnionType):
        return annotation
    members = [a for a in get_args(annotation) if a is not type(None)]
    if len(members) == 1:
        return _concrete(members[0], node)
    for member in members:
        for tag in ("kind", "op", "type"):
            if isinstance(node, dict) and isinstance(member, type) and issubclass(member, BaseModel) \
                    and tag in member.model_fields and node.get(tag) in get_args(member.model_fields[tag].annotation):
                return member
    return None


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
        key_path = _user_path(problem["loc"], raw)
        message = problem["msg"].removeprefix("Value error, ")
        named = _LEADING_KEY_PATH.match(message)  # a check across keys names the key it is about first
        about = ".".join(p for p in (key_path, named[1] if named else "") if p)
        where = located(path, nearest_line(about, lines))
        if problem["type"] == "extra_forbidden":
            message = "unknown key (check the spelling; see docs/config.md)"
        elif problem["type"] == "missing":
            message = "required key is missing"
        elif "input" in problem and not isinstance(problem["input"], (dict, list)):
            message += f" (got {problem['input']!r})"
        out.append(f"{where}: {key_path}: {message}" if key_path else f"{where}: {message}")
    return "\n".join(out)


# A check across keys (a section's or Config's own validator, reported at the section or at the root) starts
# its message with the key path it is about: `students.1.relation.teacher_layer: ...` at the root,
# `budget.batch 8 is not one of ...`, `teacher_layers [-1, 3]: ...` in students.1; that key's line is the place.
_LEADING_KEY_PATH = re.compile(r"([A-Za-z_][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*)[: ]")
