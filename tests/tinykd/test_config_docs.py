"""docs/config.md documents every key of the config schema, and only keys the schema has.

The schema (`tinykd.config.Config` and every pydantic model reachable through its field annotations) is walked
into dotted key paths in the notation explained at the top of docs/config.md:

- `a.b`: key `b` of section `a`; `a[].b`: key `b` of every item of the list `a`;
- `[k=v]`: the variant of a discriminated union whose discriminator `k` is `v` (`v1,v2` when one model takes
  several values). On a list item it replaces `[]` (`students[kind=transformer].layers`); on a single value it
  follows the key (`task.source[type=files].train`). The discriminator itself is written without a selector
  (`students[].kind`, `task.source.type`);
- a key whose value is a section (or a list of sections) is a key too, followed by its own keys.

Documented keys are the first cells of the rows of every table in docs/config.md whose header starts with `key`.
"""

from __future__ import annotations

import re
import types
import typing
from pathlib import Path

from pydantic import BaseModel, Discriminator
from pydantic.fields import FieldInfo

from tinykd.config import Config

DOC = Path(__file__).resolve().parents[2] / "docs" / "config.md"
CELL_SPLIT = re.compile(r"(?<!\\)\|")  # a table cell boundary (a pipe escaped as \| stays inside its cell)
KEY_CELL = re.compile(r"^`([^`]+)`$")
SEPARATOR = re.compile(r"^:?-+:?$")


def _is_model(tp: object) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _discriminator(metadata: typing.Iterable[object]) -> str | None:
    for item in metadata:
        found = item.discriminator if isinstance(item, (FieldInfo, Discriminator)) else None
        if isinstance(found, Discriminator):
            found = found.discriminator
        if found is not None:
            if not isinstance(found, str):
                raise TypeError(f"callable discriminator {found!r}: docs/config.md's notation names variants by "
                                "a discriminator key; extend it (and this test) first")
            return found
    return None


def _variants(tp: object, discriminator: str | None) -> list[tuple[type[BaseModel], str | None]]:
    """The models an annotation can hold, each with the `[k=v]` selector that names it (None: no selector).

    A container (list, tuple, set) yields its items' models (the caller writes the `[]`); Optional and unions
    of a single model need no selector.
    """
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Annotated:
        return _variants(args[0], _discriminator(args[1:]) or discriminator)
    if origin in (typing.Union, types.UnionType):
        models = [arg for arg in args if _is_model(arg)]
        nested = [v for arg in args if not _is_model(arg) for v in _variants(arg, discriminator)]  # Optional[list]
        if len(models) <= 1:
            return [(m, None) for m in models] + nested
        if discriminator is None:
            raise TypeError(f"union of models {[m.__name__ for m in models]} has no discriminator: docs/config.md's "
                            "notation names union variants by their discriminator value; add one or extend it")
        named = []
        for model in models:
            values = typing.get_args(model.model_fields[discriminator].annotation)
            named.append((model, f"[{discriminator}={','.join(map(str, values))}]"))
        return named + nested
    if origin in (list, tuple, set, frozenset) or origin is typing.Sequence:
        return [v for arg in args if arg is not Ellipsis for v in _variants(arg, discriminator)]
    if origin is dict or origin is typing.Mapping:
        if any(m for m, _ in _variants(args[1], discriminator)):
            raise TypeError(f"{tp}: a mapping of sections has no notation in docs/config.md yet; extend it first")
        return []
    return [(tp, None)] if _is_model(tp) else []


def _is_list(tp: object) -> bool:
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _is_list(typing.get_args(tp)[0])
    if origin in (typing.Union, types.UnionType):  # Optional[list[...]]
        return any(_is_list(arg) for arg in typing.get_args(tp) if arg is not type(None))
    return origin in (list, tuple, set, frozenset) or origin is typing.Sequence


def schema_keys(model: type[BaseModel] = Config, prefix: str = "", skip: str | None = None) -> set[str]:
    """Every dotted key path of `model` in docs/config.md's notation; `skip`: a discriminator documented above."""
    keys: set[str] = set()
    for name, field in model.model_fields.items():
        if name == skip:
            continue
        path = f"{prefix}{name}"
        keys.add(path)
        variants = _variants(field.annotation, _discriminator([field]))
        item = "[]" if _is_list(field.annotation) else ""
        for sub, selector in variants:
            if selector is None:
                keys |= schema_keys(sub, f"{path}{item}.")
            else:  # the discriminator once, without a selector; the variant's other keys after its selector
                discriminator = selector[1:].split("=")[0]
                keys.add(f"{path}{item}.{discriminator}")
                keys |= schema_keys(sub, f"{path}{selector}.", skip=discriminator)
    return keys


def documented_keys(text: str) -> tuple[list[str], list[str]]:
    """The keys in the first column of every table whose header starts with `key`, in order; and malformed rows."""
    keys, problems = [], []
    lists_keys = None  # None outside a table, else whether the table being read lists keys
    for number, line in enumerate(text.splitlines(), 1):
        if not line.lstrip().startswith("|"):
            lists_keys = None
            continue
        cells = [c.strip() for c in CELL_SPLIT.split(line.strip().strip("|"))]
        if lists_keys is None:  # the header row
            lists_keys = cells[0].lower() == "key"
            continue
        if not lists_keys or all(SEPARATOR.match(c) for c in cells):
            continue
        match = KEY_CELL.match(cells[0])
        if match is None:
            problems.append(f"docs/config.md:{number}: first cell is not one backticked key path: {cells[0]!r}")
        elif len(cells) != 3 or not cells[2]:
            problems.append(f"docs/config.md:{number}: `{match[1]}`: expected 3 cells (key, default, meaning) "
                            f"with a meaning, got {len(cells)}")
        else:
            keys.append(match[1])
    return keys, problems


def test_the_walk_sees_every_kind_of_annotation():
    keys = schema_keys()
    for key in ("task", "teacher.prune_vocabulary", "task.source.type", "task.source[type=files].train",
                "augment.ops[].op", "augment.ops[op=textattack].args", "students[].kind",
                "students[kind=bow,cnn,lstm].losses.soft", "students[kind=transformer].schedule[].losses.relation",
                "schedule_ablation.general.losses.hard", "search.space[].choices", "search.bench.repeats"):
        assert key in keys, key
    assert "students[kind=transformer].kind" not in keys and "task.source[type=files].type" not in keys


def test_only_key_tables_are_read_and_a_row_must_name_one_key():
    text = "\n".join([
        "| backend | note |", "| --- | --- |", "| `onnx-fp32` | not a key table |", "",
        "| key | default | meaning |", "| --- | --- | --- |",
        "| `teacher.epochs` | 3 | epochs |",
        "| `teacher.batch_size` / `eval_batch_size` | 32 / 64 | two keys in one row |",
        "| `search.objectives` | [accuracy, latency_ms] |",
    ])
    keys, problems = documented_keys(text)
    assert keys == ["teacher.epochs"]
    assert [p.split(":")[1] for p in problems] == ["8", "9"]


def test_docs_config_md_documents_exactly_the_schema_keys():
    schema = schema_keys()
    documented, problems = documented_keys(DOC.read_text(encoding="utf-8"))
    duplicated = sorted({k for k in documented if documented.count(k) > 1})
    undocumented = sorted(schema - set(documented))
    unknown = sorted(set(documented) - schema)
    report = []
    if undocumented:
        report.append(f"{len(undocumented)} schema key(s) not documented in docs/config.md (add a "
                      "`key | default | meaning` row to its section):\n  " + "\n  ".join(undocumented))
    if unknown:
        report.append(f"{len(unknown)} documented key(s) that tinykd/config.py does not have (renamed or "
                      "removed? fix or delete the row):\n  " + "\n  ".join(unknown))
    if duplicated:
        report.append("key(s) documented more than once:\n  " + "\n  ".join(duplicated))
    if problems:
        report.append("malformed key rows:\n  " + "\n  ".join(problems))
    assert not report, "\n\n".join(report)
