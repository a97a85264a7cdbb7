"""One key-path implementation for --set and the search space: list items by name or index."""

from __future__ import annotations

import pytest

from tinykd.key_paths import KeyPathError, resolve, set_key

RAW = {"students": [{"name": "bow", "epochs": 3}, {"name": "tiny.v2", "schedule": [{"epochs": 1}, {"epochs": 2}]}],
       "teacher": {"epochs": 3}, "augment": None}


def test_items_by_name_by_index_and_by_a_name_with_dots():
    assert resolve(RAW, "students.bow.epochs") == (["students", 0, "epochs"], 3)
    assert resolve(RAW, "students.1.schedule.1.epochs") == (["students", 1, "schedule", 1, "epochs"], 2)
    assert resolve(RAW, "students.tiny.v2.schedule.0.epochs") == (["students", 1, "schedule", 0, "epochs"], 1)


@pytest.mark.parametrize("path, message", [
    ("teacher.epoch", "unknown key 'epoch' in teacher (its keys: epochs)"),
    ("students.tiny.epochs", "students has no item named 'tiny' (did you mean 'tiny.v2'? names: ['bow', 'tiny.v2']; "
                             "or an index 0..1)"),
    ("students.-1.epochs", "students has 2 items; index -1 is out of range (names: ['bow', 'tiny.v2']; or an index 0..1)"),
    ("augment.multiplier", "augment is null in this config; set it explicitly to address its keys"),
])
def test_a_path_that_does_not_resolve_says_why(path, message):
    with pytest.raises(KeyPathError) as caught:
        resolve(RAW, path)
    assert str(caught.value) == message


def test_set_key_creates_absent_sections_only_when_asked():
    raw = {"students": [{"name": "bow"}], "augment": None}
    with pytest.raises(KeyPathError, match="unknown key 'bench'"):
        set_key(raw, "bench.duration_s", 1)
    assert set_key(raw, "bench.duration_s", 1, new_section=lambda keys: {}) == ["bench", "duration_s"]
    assert set_key(raw, "augment.multiplier", 2, new_section=lambda keys: {}) == ["augment", "multiplier"]
    assert set_key(raw, "students.bow.epochs", 1, new_section=lambda keys: {}) == ["students", 0, "epochs"]
    assert raw == {"students": [{"name": "bow", "epochs": 1}], "augment": {"multiplier": 2}, "bench": {"duration_s": 1}}
