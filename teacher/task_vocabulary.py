"""The texts a pruned teacher keeps the vocabulary of (`teacher.prune_vocabulary`), and what they depend on.

Train and dev rows; the augmented rows when the config has an augment section (the label stage then scores
them exactly as the full vocabulary would); People's Daily when a transformer student, or the schedule
ablation, distills on general text (the teacher computes relations on it). Never the test split: the teacher
is judged on it with the vocabulary its training data gave, as a deployed model meets new text (a token
outside it becomes smaller pieces or the unknown token).
"""

from __future__ import annotations

import pandas as pd

from tinykd.artifacts import RunPaths, recorded_fingerprint, require
from tinykd.config import Config, TransformerStudentSpec
from tinykd.peoples_daily import read_peoples_daily
from tinykd.task_rows import text_columns


def vocabulary_texts(config: Config, paths: RunPaths) -> list[str]:
    """Every text the pruned vocabulary is built from, each once, in a stable order."""
    frames = [pd.read_parquet(require(paths.split(split), "data")) for split in ("train", "dev")]
    if config.augment is not None:
        frames.append(pd.read_parquet(require(paths.augmented, "augment")))
    texts = [text for frame in frames for column in text_columns(config.task) for text in frame[column].astype(str)]
    if _needs_general_text(config):
        texts += read_peoples_daily()
    return list(dict.fromkeys(texts))


def vocabulary_inputs(config: Config, paths: RunPaths) -> list:
    """What the kept vocabulary depends on beyond the data splits, for the teacher's fingerprint."""
    if not config.teacher.prune_vocabulary:
        return []
    augment = recorded_fingerprint(require(paths.augment_summary, "augment")) if config.augment is not None else None
    return [augment, _needs_general_text(config)]


def _needs_general_text(config: Config) -> bool:
    has_augment = config.augment is not None
    students = [s for s in config.students if isinstance(s, TransformerStudentSpec)]
    general = any(s.stage_data(stage, has_augment) == "unlabeled" for s in students for stage in s.schedule)
    return general or config.schedule_ablation is not None
