"""The collapse guard stops a fine-tune stuck at the label prior, and leaves a learning run alone."""

from __future__ import annotations

import math

import numpy as np
import pytest
from transformers import TrainerState

from tests.teacher.test_finetune import _config
from tinykd import data_stage
from tinykd.artifacts import RunPaths
from tinykd.errors import TrainingError
from tinykd.teacher import finetune
from tinykd.teacher.collapse_guard import CollapseGuard, prior_entropy


def _feed(guard: CollapseGuard, losses: list[float], every: int = 25) -> None:
    state = TrainerState()
    for i, loss in enumerate(losses, start=1):
        state.global_step = i * every
        guard.on_log(None, state, None, logs={"loss": loss})


def test_prior_entropy_is_ln_k_for_balanced_labels_and_lower_for_skewed():
    assert prior_entropy(np.array([0, 1, 0, 1]), 2) == pytest.approx(math.log(2))
    assert prior_entropy(np.array([0, 0, 0, 1]), 2) < math.log(2)
    assert prior_entropy(np.array([0, 1, 2]), 4) == pytest.approx(math.log(3))  # an unused class adds nothing


def test_guard_raises_when_the_loss_stays_at_the_prior_entropy():
    guard = CollapseGuard(math.log(2), after_steps=100)
    with pytest.raises(TrainingError, match="collapsed.*teacher.seed"):
        _feed(guard, [0.70, 0.69, 0.694, 0.693, 0.692])


def test_guard_waits_for_after_steps_and_stands_down_once_the_loss_drops():
    guard = CollapseGuard(math.log(2), after_steps=100)
    _feed(guard, [0.69, 0.69, 0.69])  # steps 25..75: too early to judge
    late_learner = CollapseGuard(math.log(2), after_steps=100)
    _feed(late_learner, [0.69, 0.60, 0.50, 0.40])  # mean 0.55 at step 100: learning
    assert late_learner.learning
    _feed(late_learner, [0.69] * 8)  # a later plateau is not a collapse once it has learned
    assert late_learner.learning


def test_teacher_stage_stops_a_collapsed_run_with_a_clear_error(sentiment_files, tiny_teacher, tmp_path):
    # lr 1e-9: the random tiny classifier cannot move off its near-uniform start, as a collapsed run does.
    config = _config(tmp_path, sentiment_files, tiny_teacher, learning_rate=1e-9, collapse_check_steps=50)
    paths = RunPaths(tmp_path / "run")
    data_stage.run(config, paths)
    with pytest.raises(TrainingError, match=r"after 100 steps the training loss is 0\.6"):
        finetune.run(config, paths)
    assert not paths.teacher_model.exists()
