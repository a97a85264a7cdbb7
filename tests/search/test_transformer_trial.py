"""A search trial of a tiny transformer student: the HF Trainer reports dev accuracy per epoch to the pruner."""

from __future__ import annotations

import optuna
import pytest

from tests.search.tiny_search import QUICK_BENCH
from tests.student.test_distill_stage import _pipeline
from tinykd.config import SearchConfig
from tinykd.search.objective import Objective

TINY = {"name": "tiny", "kind": "transformer", "layers": 1, "hidden": 16, "heads": 2, "intermediate": 32,
        "relation": {"heads": 2}, "save_steps": 50,
        "schedule": [{"stage": "task_relation", "max_rows": 64, "epochs": 1, "batch_size": 16, "learning_rate": 1e-3},
                     {"stage": "task_prediction", "max_rows": 160, "epochs": 2, "batch_size": 16}]}
SEARCH = {"student": "tiny", "backend": "onnx-int8-dynamic", "bench": QUICK_BENCH, "pruner_startup_trials": 1,
          "pruner_warmup_epochs": 1,
          "space": [{"path": "students.tiny.schedule.1.learning_rate", "type": "log_float", "low": 1e-4, "high": 1e-3}]}


def test_a_transformer_trial_reports_each_dev_epoch_and_can_be_pruned(sentiment_files, tiny_teacher, tmp_path):
    config, paths = _pipeline(tmp_path, sentiment_files, tiny_teacher, students=[TINY])
    config = config.model_copy(update={"search": SearchConfig.model_validate(SEARCH)})

    study = optuna.create_study(directions=["maximize", "minimize"])
    trial = study.ask()
    accuracy, latency_ms = Objective(config, paths)(trial)
    attrs = study.trials[0].user_attrs
    assert len(attrs["dev_accuracy_by_epoch"]) == 2  # one report per task_prediction epoch
    assert attrs["dev_accuracy_by_epoch"][-1] <= accuracy == attrs["dev_accuracy"] and latency_ms > 0

    # Single objective: Optuna's median pruner stops a trial below a finished one at epoch 2 (out of trainer.train).
    single = optuna.create_study(direction="maximize",
                                 pruner=optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=1))
    # (a finished trial above any reachable accuracy, so the outcome does not depend on what the tiny model learns)
    single.add_trial(optuna.create_trial(value=2.0, intermediate_values={0: 2.0, 1: 2.0}))
    pruned = single.ask()
    with pytest.raises(optuna.TrialPruned, match="after epoch 2 is below the median"):
        Objective(config, paths)(pruned)
    assert list(single.trials[1].intermediate_values) == [0, 1]
