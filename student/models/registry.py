"""Student kind -> model class, and loading a saved student directory by its config."""

from __future__ import annotations

from pathlib import Path

from tinykd.student.models.bilstm import BiLstmStudent
from tinykd.student.models.bow import BowStudent
from tinykd.student.models.small_student import SmallStudent, SmallStudentConfig
from tinykd.student.models.textcnn import TextCnnStudent

SMALL_STUDENTS: dict[str, type[SmallStudent]] = {"bow": BowStudent, "cnn": TextCnnStudent, "lstm": BiLstmStudent}


def build_small_student(config: SmallStudentConfig) -> SmallStudent:
    return SMALL_STUDENTS[config.kind](config)


def load_small_student(directory: Path) -> SmallStudent:
    config = SmallStudentConfig.from_pretrained(directory)
    return SMALL_STUDENTS[config.kind].from_pretrained(directory)
