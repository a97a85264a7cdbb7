"""`teacher.shape: bi`: a bi-encoder teacher with a cosine head, fitted to the train pairs, fine-tuned, labelling
pairs with each text encoded apart (on its checked ONNX graph too), and refused where a cosine cannot apply."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, BertConfig

from tests.conftest import file_task, topic_rows, write_config
from tests.student.test_bi_encoder_distill import _pair_task
from tests.tiny_models import save_tiny_teacher
from tinykd import data_stage
from tinykd.artifacts import RunPaths
from tinykd.config_loading import load_config
from tinykd.errors import ConfigError
from tinykd.teacher import finetune, labeling
from tinykd.teacher.bi_encoder import BiEncoderConfig, BiEncoderForSequenceClassification, CosineHead
from tinykd.teacher.cosine_head_fit import fit_cosine_head
from tinykd.teacher.encoding import encode_rows, pad_features


def test_cosine_head_margin_is_scaled_cosine_minus_shift():
    head = CosineHead()
    with torch.no_grad():
        head.scale.fill_(4.0)
        head.shift.fill_(0.5)
    u, v = torch.tensor([[1.0, 0.0], [2.0, 0.0]]), torch.tensor([[3.0, 3.0], [0.0, 5.0]])  # cosines 1/sqrt(2), 0
    logits = head(u, v)
    half = 0.5 * 4.0 * (2 ** -0.5 - 0.5)  # 0.41421
    assert torch.allclose(logits, torch.tensor([[-half, half], [1.0, -1.0]]), atol=1e-6)
    # one query row against several candidates broadcasts
    assert torch.allclose(head(u[:1], v), torch.tensor([[-half, half], [1.0, -1.0]]), atol=1e-6)


def _tiny_bi(tmp_path):
    texts = [t for _, t in topic_rows(200, 0)]
    base = save_tiny_teacher(tmp_path / "base", texts)
    labels = {"num_labels": 2, "id2label": {0: "different", 1: "same"}, "label2id": {"different": 0, "same": 1}}
    return BiEncoderForSequenceClassification.from_encoder(str(base), head="cosine", **labels), \
        AutoTokenizer.from_pretrained(base)


def test_fitted_head_reproduces_labels_a_cosine_threshold_separates(tmp_path):
    model, tokenizer = _tiny_bi(tmp_path)
    texts = [t for _, t in topic_rows(120, 3)]
    rows = pd.DataFrame({"text_a": texts[::2], "text_b": texts[1::2]})
    features = encode_rows(tokenizer, rows, 32, sides=True)
    with torch.no_grad():
        batch = pad_features(tokenizer, features)
        model.eval()
        u = model.embed(batch["input_ids"], batch["attention_mask"])
        v = model.embed(batch["input_ids_b"], batch["attention_mask_b"])
        cosine = torch.nn.functional.cosine_similarity(u, v).numpy()
    labels = (cosine > np.median(cosine)).astype(int)  # separable by one cosine threshold
    for feature, label in zip(features, labels):
        feature["labels"] = int(label)
    fit = fit_cosine_head(model, tokenizer, features, batch_size=16, seed=0)
    assert fit["rows"] == 60 and fit["train_accuracy"] == 1.0 and fit["scale"] > 0
    assert np.quantile(cosine, 0.4) < fit["shift"] < np.quantile(cosine, 0.6)
    model.eval()
    with torch.no_grad():
        predicted = model(**pad_features(tokenizer, features)).logits.argmax(-1).numpy()
    assert (predicted == labels).all()


@pytest.fixture(scope="module")
def bi_teacher_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("bi-teacher")
    texts = [text for seed in (0, 1, 2) for _, text in topic_rows(400, seed)]
    base = save_tiny_teacher(tmp_path / "base", texts)
    teacher = {"base": str(base), "shape": "bi", "epochs": 3, "batch_size": 16, "learning_rate": 1e-3,
               "save_steps": 20, "prune_vocabulary": True}
    config = load_config(write_config(tmp_path / "c.yaml", {"task": _pair_task(tmp_path), "teacher": teacher,
                                                            "label": {"batch_size": 32}}))
    paths = RunPaths(tmp_path / "run")
    data_stage.run(config, paths)
    result = finetune.run(config, paths)
    return config, paths, result


def test_bi_teacher_fits_its_head_trains_and_saves_a_bi_encoder(bi_teacher_run):
    config, paths, result = bi_teacher_run
    metrics = json.loads(paths.teacher_metrics.read_text())
    assert metrics["shape"] == "bi" and metrics["head"] == "cosine"
    assert metrics["cosine_head_fit"]["rows"] == 200  # every train pair (fewer than FIT_ROWS)
    model = AutoModelForSequenceClassification.from_pretrained(paths.teacher_model)
    assert isinstance(model, BiEncoderForSequenceClassification) and model.config.head == "cosine"
    assert model.get_input_embeddings().num_embeddings < 400  # pruned to the task's tokens
    assert sum(map(sum, metrics["test"]["confusion_matrix"])) == 60
    assert finetune.run(config, paths).skipped


def test_bi_teacher_labels_each_text_apart_on_its_checked_graph(bi_teacher_run):
    config, paths, _ = bi_teacher_run
    labeling.run(config, paths)
    summary = json.loads((paths.label_dir / "summary.json").read_text())
    rows = pd.read_parquet(paths.labels("test"))
    model = AutoModelForSequenceClassification.from_pretrained(paths.teacher_model).eval()
    tokenizer = AutoTokenizer.from_pretrained(paths.teacher_model)
    with torch.no_grad():
        expected = model(**pad_features(tokenizer, encode_rows(tokenizer, rows, config.task.max_length, True))).logits
    logits = np.stack(rows["logits"].to_numpy())
    assert np.abs(logits - expected.numpy()).max() < 1e-4
    assert summary["runtime"]["runtime"] == "onnx", summary["runtime"]


@pytest.mark.parametrize("task, teacher, message", [
    ("single", {}, "teacher.shape: bi embeds the two texts of a pair apart; task.kind is 'single'"),
    ("pair", {"head": "cls"}, "teacher.head: cls does not apply to teacher.shape bi"),
    ("pair", {"members": [{"seed": 1}, {"seed": 2}]}, "teacher.members: an ensemble averages cross-encoders"),
])
def test_bi_teacher_is_refused_where_a_cosine_cannot_apply(sentiment_files, tmp_path, task, teacher, message):
    sections = {"task": file_task(sentiment_files) if task == "single" else _pair_task(tmp_path),
                "teacher": {"shape": "bi", **teacher}}
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(write_config(tmp_path / "c.yaml", sections))


def test_changing_the_shape_retrains_the_teacher(bi_teacher_run):
    config, paths, _ = bi_teacher_run
    cross = config.model_copy(update={"teacher": config.teacher.model_copy(update={"shape": "cross"})})
    assert finetune._stamp(cross, paths, cross.teacher) != finetune._stamp(config, paths, config.teacher)
