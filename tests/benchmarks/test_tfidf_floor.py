"""The TF-IDF + logistic regression floor keeps the task's class ids, even for a class absent from train."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.conftest import TOPICS, topic_rows
from tinykd.benchmarks.tfidf_floor import TfidfFloor
from tinykd.errors import DataError

NAMES = ["billing-issue", "late-delivery", "poor-quality", "refund-request"]


def _rows(n: int, seed: int) -> pd.DataFrame:
    ids = {label: i for i, label in enumerate(TOPICS)}
    return pd.DataFrame([{"text_a": text, "label": ids[label]} for label, text in topic_rows(n, seed)])


@pytest.mark.parametrize("absent", [0, 2, 3])  # the first, a middle and the last declared class
def test_a_class_absent_from_train_keeps_its_column_with_probability_zero(absent):
    train, test = _rows(200, seed=0), _rows(80, seed=2)
    floor = TfidfFloor.fit(train[train["label"] != absent], pair=False, num_labels=4)
    inputs = floor.encode(test["text_a"].tolist(), None)
    probabilities, logits = floor.probabilities(inputs), floor(inputs)
    assert probabilities.shape == logits.shape == (80, 4)  # one column per declared class, in declared order
    assert (probabilities[:, absent] == 0).all() and np.isneginf(logits[:, absent]).all()
    np.testing.assert_allclose(probabilities.sum(1), 1.0, rtol=1e-6)
    present = test["label"] != absent
    # The cue word decides the class: every row of a class seen in train lands in its own column.
    assert (logits.argmax(1)[present] == test["label"][present]).all()
    metrics = floor.metrics(test, NAMES)
    assert metrics["per_class"][NAMES[absent]]["f1"] == 0.0
    assert metrics["per_class"][NAMES[absent]]["support"] == int((~present).sum()) > 0
    f1 = [metrics["per_class"][name]["f1"] for name in NAMES]
    assert metrics["macro_f1"] == pytest.approx(np.mean(f1)) and metrics["macro_f1"] < 0.75  # the absent class: 0
    assert floor.accuracy(test) == pytest.approx(present.mean())


def test_two_classes_score_like_more():
    rows = _rows(200, seed=0)
    binary = rows[rows["label"] < 2]
    floor = TfidfFloor.fit(binary, pair=False)  # width inferred from the labels seen: 2
    scores = floor(floor.encode(binary["text_a"].tolist(), None))
    assert scores.shape == (len(binary), 2) and (scores.argmax(1) == binary["label"]).all()


def test_a_train_split_of_one_class_is_a_clear_error():
    rows = _rows(60, seed=0)
    with pytest.raises(DataError, match="at least two classes in train"):
        TfidfFloor.fit(rows[rows["label"] == 1], pair=False, num_labels=4)
