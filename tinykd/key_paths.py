"""Dotted key paths into a config's plain-data form: `students.bow.losses.soft`, `students.0.schedule.1.epochs`.

The search space names the keys it varies this way. A list item is addressed by its index or by its
`name` (students), so a path keeps meaning the same student when the list is reordered. Paths are
resolved against a *complete* dump of the config (every field present), so an unknown key is one the
schema does not have, not one the user left at its default.
"""

from __future__ import annotations

from typing import Any


class KeyPathError(ValueError):
    """A path that does not name a key of the config."""


def resolve(raw: dict, path: str) -> tuple[list[str | int], Any]:
    """The path's canonical segments (list items by index) and the value it names now."""
    node: Any = raw
    keys: list[str | int] = []
    for segment in path.split("."):
        where = ".".join(map(str, keys)) or "the config"
        if isinstance(node, dict):
            if segment not in node:
                raise KeyPathError(f"unknown key '{segment}' in {where} (its keys: {', '.join(node)})")
            keys.append(segment)
            node = node[segment]
        elif isinstance(node, list):
            index = _list_index(node, segment, where)
            keys.append(index)
            node = node[index]
        elif node is None:
            raise KeyPathError(f"{where} is null in this config; set it explicitly to search over its keys")
        else:
            raise KeyPathError(f"{where} is a value ({node!r}), not a section: it has no key '{segment}'")
    return keys, node


def set_key(raw: dict, path: str, value: Any) -> None:
    """Set the value at `path` in place (the path must resolve; see `resolve`)."""
    keys, _ = resolve(raw, path)
    node: Any = raw
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = value


def _list_index(items: list, segment: str, where: str) -> int:
    if segment.lstrip("-").isdigit():
        index = int(segment)
        if not 0 <= index < len(items):
            raise KeyPathError(f"{where} has {len(items)} items; index {index} is out of range")
        return index
    names = [item.get("name") for item in items if isinstance(item, dict)]
    if segment not in names:
        raise KeyPathError(f"{where} has no item named '{segment}' (names: {[n for n in names if n is not None]}; "
                           "or use an index)")
    return names.index(segment)
