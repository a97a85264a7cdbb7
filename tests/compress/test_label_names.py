"""The compress stage judges each build per declared class, and refuses a model trained for another label set."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.conftest import install_as_teacher, topic_task, write_config
from tinykd.artifacts import RunPaths
from tinykd.compress import stage
from tinykd.compress.stage import classification_figures
from tinykd.config_loading import load_config
from tinykd.errors import ArtifactError

NAMES = ["billing-issue", "late-delivery", "poor-quality", "refund-request"]


def test_figures_give_macro_f1_and_f1_per_class_by_label_name():
    labels = np.array([0, 0, 1, 2, 3, 3])
    logits = np.eye(4, dtype=np.float32)[[0, 0, 1, 2, 3, 0]]  # one refund-request row taken for billing
    figures = classification_figures(logits, labels, NAMES)
    assert figures["accuracy"] == pytest.approx(5 / 6)
    assert figures["per_class_f1"] == pytest.approx({"billing-issue": 0.8, "late-delivery": 1.0, "poor-quality": 1.0,
                                                     "refund-request": 2 / 3})
    assert figures["macro_f1"] == pytest.approx((0.8 + 1 + 1 + 2 / 3) / 4)
    with pytest.raises(ArtifactError, match=r"gives 2 logits per row but the task declares 4 labels"):
        classification_figures(logits[:, :2], labels, NAMES)


def test_a_two_class_teacher_in_a_four_class_run_is_refused_before_any_build(tmp_path, topic_files, tiny_teacher):
    config = load_config(write_config(tmp_path / "c.yaml", {
        "task": topic_task(topic_files), "compress": {"models": ["teacher"], "backends": ["torch-fp32"]}}))
    paths = RunPaths(tmp_path / "run")
    paths.data_dir.mkdir(parents=True)
    pd.DataFrame({"text_a": ["账单不对", "物流太慢"], "label": [0, 1]}).to_parquet(paths.split("test"))
    install_as_teacher(paths, tiny_teacher)  # a 2-label BERT
    with pytest.raises(ArtifactError, match=r"teacher/model: a 2-class model, but the task declares 4 labels "
                                            r"\['billing-issue'.*re-run the 'teacher' stage"):
        stage.run(config, paths)
    assert not paths.compressed("teacher", "torch-fp32").exists()
