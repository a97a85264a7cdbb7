"""Stop a fine-tuning run that has collapsed to predicting the class prior, instead of training on for hours.

A collapsed classifier's training loss sits at the entropy of the label distribution (ln 2 = 0.693 for
balanced binary labels): the ChnSentiCorp teacher with seed 42 stayed there for 500 steps and ended its
first epoch at 50.6 % dev accuracy. Once `after_steps` have passed, the guard looks at the mean of the
last `window` logged losses; if it is still within `tolerance` of the prior's entropy, it raises a
`TrainingError` that says what happened and what to change. The first time the loss is clearly below, the
guard stands down for the rest of the run (a run that learns late is not stopped).
"""

from __future__ import annotations

import math

import numpy as np
from transformers import TrainerCallback

from tinykd.errors import TrainingError


def prior_entropy(labels: np.ndarray, num_labels: int) -> float:
    """Cross-entropy (nats) of always predicting the training label frequencies."""
    counts = np.bincount(labels, minlength=num_labels).astype(float)
    shares = counts[counts > 0] / counts.sum()
    return float(-(shares * np.log(shares)).sum())


class CollapseGuard(TrainerCallback):
    def __init__(self, entropy: float, after_steps: int, window: int = 4, tolerance: float = 0.03) -> None:
        self.entropy, self.after_steps, self.window, self.tolerance = entropy, after_steps, window, tolerance
        self.losses: list[float] = []
        self.learning = False

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.learning or not logs or "loss" not in logs or not math.isfinite(logs["loss"]):
            return
        self.losses.append(float(logs["loss"]))
        recent = float(np.mean(self.losses[-self.window:]))
        if recent < self.entropy * (1 - self.tolerance):
            self.learning = state.global_step >= self.after_steps
            return
        if state.global_step >= self.after_steps and len(self.losses) >= self.window:
            raise TrainingError(
                f"teacher training collapsed: after {state.global_step} steps the training loss is {recent:.3f}, the "
                f"entropy of the label prior ({self.entropy:.3f}), so the model predicts the prior. Change teacher.seed "
                f"or lower teacher.learning_rate and rerun (teacher.collapse_check_steps: null disables this check)")
