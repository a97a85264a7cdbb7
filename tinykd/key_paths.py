"""Dotted key paths into a config's plain-data form: `students.bow.losses.soft`, `students.0.schedule.1.epochs`.

One implementation serves `--set key.path=value` (on the YAML as written, where a section may be absent)
and the search space (on a *complete* dump of the config, every field present, so an unknown key is one the
schema does not have, not one the user left at its default). A list item is addressed by its index or by
its `name` (students), so a path keeps meaning the same student when the list is reordered; a name may
itself contain dots (`students.tiny.v2.epochs`).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from pathlib import Path
from typing import Any

Keys = list[str | int]
NewSection = Callable[[Keys], dict | list]


class KeyPathError(ValueError):
    """A path that does not name a key of the config."""


def resolve(raw: dict, path: str) -> tuple[Keys, Any]:
    """The path's canonical segments (list items by index) and the value it names now."""
    keys, parent = _walk(raw, path, None)
    return keys, parent[keys[-1]]


def set_key(raw: dict, path: str, value: Any, new_section: NewSection | None = None) -> Keys:
    """Set the value at `path` in place; its canonical segments (list items by index).

    Without `new_section` the path must resolve (see `resolve`). With it, the last key may be absent, and an
    absent or null section on the way is created as `new_section(keys)` (an empty dict, or an empty list
    where the schema declares one): what `--set` needs on a YAML file that leaves sections out.
    """
    keys, parent = _walk(raw, path, new_section)
    parent[keys[-1]] = value
    return keys


def dotted(keys: Keys) -> str:
    return ".".join(map(str, keys))


def _walk(raw: dict, path: str, new_section: NewSection | None) -> tuple[Keys, dict | list]:
    """The canonical keys of `path` and the container that holds its last key."""
    segments = path.split(".")
    node: Any = raw
    keys: Keys = []
    parent: Any = None
    i = 0
    while i < len(segments):
        segment, where = segments[i], dotted(keys) or "the config"
        last = i == len(segments) - 1
        if isinstance(node, dict):
            if node.get(segment) is None and new_section is not None and not last:
                node[segment] = new_section([*keys, segment])  # an absent (or null) section the value goes into
            elif segment not in node and (new_section is None or not last):
                raise KeyPathError(f"unknown key '{segment}' in {where} (its keys: {', '.join(node)})")
            keys.append(segment)
            used = 1
        elif isinstance(node, list):
            index, used = _list_item(node, segments[i:], where)
            keys.append(index)
        elif node is None:
            raise KeyPathError(f"{where} is null in this config; set it explicitly to address its keys")
        else:
            raise KeyPathError(f"{where} is a value ({node!r}), not a section: it has no key '{segment}'")
        parent, i = node, i + used
        if i < len(segments):
            node = node[keys[-1]]
    return keys, parent


def _list_item(items: list, segments: list[str], where: str) -> tuple[int, int]:
    """(index of the item that `segments` starts with, how many segments name it)."""
    names = [item.get("name") for item in items if isinstance(item, dict) and item.get("name") is not None]
    if not items:
        choices = "the list is empty"
    elif names:
        choices = f"names: {names}; or an index 0..{len(items) - 1}"
    else:
        choices = f"its items have no names: use an index 0..{len(items) - 1}"
    segment = segments[0]
    if segment.lstrip("-").isdigit():
        index = int(segment)
        if not 0 <= index < len(items):
            raise KeyPathError(f"{where} has {len(items)} items; index {index} is out of range ({choices})")
        return index, 1
    for used in range(len(segments), 0, -1):  # the longest name first: a student name may contain dots
        name = ".".join(segments[:used])
        for index, item in enumerate(items):
            if isinstance(item, dict) and item.get("name") == name:
                return index, used
    close = difflib.get_close_matches(segment, names, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise KeyPathError(f"{where} has no item named '{segment}' ({hint}{choices})")


def located(path: str | Path, line: int | str | None) -> str:
    """`file:line`, `file (--set)` or `file`."""
    return f"{path}:{line}" if isinstance(line, int) else f"{path} ({line})" if line else str(path)


def nearest_line(key_path: str, lines: dict[str, int | str]) -> int | str | None:
    """The line of the key itself, else of its closest parent (a missing key is reported at its section)."""
    if not key_path:
        return None
    parts = key_path.split(".")
    while parts:
        key = ".".join(parts)
        if key in lines:
            return lines[key]
        parts.pop()
    return None
