"""The README stays a user's page: what tinykd is, the two commands, a worked example, the stages. Measurements go
to docs/results.md and config keys to docs/config.md, so the README holds under 300 lines (issue 16)."""

from __future__ import annotations

from tests.conftest import ROOT

MAX_LINES = 299


def test_the_readme_is_under_300_lines():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_LINES, f"README.md has {len(lines)} lines; move measurements to docs/results.md"


def test_the_readme_starts_with_the_two_commands():
    head = (ROOT / "README.md").read_text(encoding="utf-8").split("```", 2)[1]
    assert "make distill" in head and "make test" in head
