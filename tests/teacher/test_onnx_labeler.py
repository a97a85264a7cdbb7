"""The teacher's ONNX Runtime graph labels as torch does, and is refused where it does not."""

from __future__ import annotations

import numpy as np
import pandas as pd
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from tests.conftest import sentiment_rows
from tinykd.teacher.encoding import batched_logits, encode_rows, predict_logits
from tinykd.teacher.onnx_labeler import OnnxTeacher, onnx_teacher


def _teacher_and_features(tiny_teacher, rows: int = 80):
    tokenizer = AutoTokenizer.from_pretrained(tiny_teacher)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_teacher).eval()
    frame = pd.DataFrame(sentiment_rows(rows), columns=["label", "text_a"])
    return model, tokenizer, encode_rows(tokenizer, frame, 32)


def test_the_fused_graph_labels_every_row_as_torch_does(tiny_teacher, tmp_path):
    model, tokenizer, features = _teacher_and_features(tiny_teacher)
    teacher = onnx_teacher(model, tokenizer, features, tmp_path)
    assert teacher.graph == tmp_path / "teacher-fused.onnx"
    assert teacher.facts["attention_fused"] == f"{model.config.num_hidden_layers}/{model.config.num_hidden_layers} layers"
    assert teacher.facts["max_abs_logit_diff_vs_torch"] <= 1e-4
    expected = predict_logits(model, tokenizer, features, batch_size=16)  # (N, K)
    got = batched_logits(teacher.forward(threads=1), tokenizer, features, 16, model.config.num_labels)
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_a_graph_that_computes_something_else_is_refused_and_torch_labels(tiny_teacher, tmp_path, monkeypatch):
    model, tokenizer, features = _teacher_and_features(tiny_teacher)
    import tinykd.teacher.onnx_labeler as onnx_labeler

    real = onnx_labeler.export_logits_graph

    def export_another_model(m, example, path, opset):  # a graph of a teacher whose weights drifted
        other = AutoModelForSequenceClassification.from_pretrained(tiny_teacher).eval()
        other.classifier.bias.data += 0.01
        real(other, example, path, opset)

    monkeypatch.setattr(onnx_labeler, "export_logits_graph", export_another_model)
    teacher = onnx_teacher(model, tokenizer, features, tmp_path)
    assert teacher == OnnxTeacher(None, teacher.facts) and teacher.forward(threads=1) is None
    assert teacher.facts["runtime"] == "torch"
    assert teacher.facts["teacher-fused.onnx_max_abs_logit_diff"] > 1e-4
