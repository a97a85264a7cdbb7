"""`teacher.members`: an ensemble teacher whose logits are its members' weighted mean, saved as one model."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from tests.conftest import file_task, write_config
from tinykd import data_stage
from tinykd.artifacts import RunPaths
from tinykd.config_loading import load_config
from tinykd.teacher import finetune
from tinykd.teacher.encoding import encode_rows, predict_logits
from tinykd.teacher.ensemble import EnsembleForSequenceClassification, structural_teacher
from tinykd.teacher_shape import saved_shape


def test_logits_are_the_weighted_mean_of_the_members_and_survive_a_save(tiny_teacher, tmp_path):
    first = AutoModelForSequenceClassification.from_pretrained(tiny_teacher)
    second = AutoModelForSequenceClassification.from_pretrained(tiny_teacher)
    second.classifier.bias.data = torch.tensor([1.0, -1.0])
    ensemble = EnsembleForSequenceClassification.from_members([first, second], [1.0, 3.0])
    ids = torch.tensor([[2, 7, 9, 3], [2, 5, 3, 0]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])
    with torch.no_grad():
        a, b = (m(input_ids=ids, attention_mask=mask).logits for m in (first, second))
        expected = 0.25 * a + 0.75 * b  # weights 1 and 3, normalised
        torch.testing.assert_close(ensemble(input_ids=ids, attention_mask=mask).logits, expected)
        # Only the head bias differs: the mean moves the logits by 0.75 * (1, -1).
        torch.testing.assert_close(expected - a, torch.tensor([[0.75, -0.75]] * 2))
        ensemble.save_pretrained(tmp_path / "saved")
        loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "saved")
        assert isinstance(loaded, EnsembleForSequenceClassification) and not loaded.training
        torch.testing.assert_close(loaded(input_ids=ids, attention_mask=mask).logits, expected)
    assert structural_teacher(loaded) is loaded.members[0]
    assert saved_shape(tmp_path / "saved").layers == first.config.num_hidden_layers


def test_the_teacher_stage_trains_each_member_and_saves_their_mean(sentiment_files, tiny_teacher, tmp_path):
    teacher = {"base": str(tiny_teacher), "epochs": 4, "batch_size": 16, "learning_rate": 3e-3, "save_steps": 10,
               "members": [{"seed": 1}, {"seed": 2, "weight": 3.0}]}
    config_file = write_config(tmp_path / "c.yaml", {"task": file_task(sentiment_files), "teacher": teacher})
    paths = RunPaths(tmp_path / "run")
    config = load_config(config_file)
    data_stage.run(config, paths)
    result = finetune.run(config, paths)
    assert result.members == 2 and "ensemble of 2 members" in result.summary()
    metrics = json.loads(paths.teacher_metrics.read_text())
    assert [m["seed"] for m in metrics["members"]] == [1, 2]

    # The saved teacher's test logits are the members' 1:3 mean; the reported accuracy is the ensemble's.
    test = pd.read_parquet(paths.split("test"))
    tokenizer = AutoTokenizer.from_pretrained(paths.teacher_model)
    features = encode_rows(tokenizer, test, 32)
    member_logits = [predict_logits(AutoModelForSequenceClassification.from_pretrained(
        paths.teacher_dir / "members" / str(i) / "model"), tokenizer, features, 16) for i in range(2)]
    saved = AutoModelForSequenceClassification.from_pretrained(paths.teacher_model)
    logits = predict_logits(saved, tokenizer, features, 16)
    np.testing.assert_allclose(logits, 0.25 * member_logits[0] + 0.75 * member_logits[1], atol=1e-5)
    assert metrics["test"]["accuracy"] == float((logits.argmax(1) == test["label"].to_numpy()).mean())
    assert not np.allclose(member_logits[0], member_logits[1])  # the seeds made two different teachers

    # A third member trains only itself: the first two are reused as they are.
    first_model = paths.teacher_dir / "members" / "0" / "model" / "model.safetensors"
    written = first_model.stat().st_mtime_ns
    teacher["members"].append({"seed": 3})
    config = load_config(write_config(tmp_path / "c.yaml", {"task": file_task(sentiment_files), "teacher": teacher}))
    assert finetune.run(config, paths).members == 3
    assert first_model.stat().st_mtime_ns == written
    assert len(json.loads(paths.teacher_metrics.read_text())["members"]) == 3


def test_an_ensemble_teacher_builds_the_onnx_backends_with_both_members_fused(tiny_teacher, tmp_path):
    """compress and bench take the ensemble like any teacher: one graph, every member's attention fused."""
    from tinykd.compress import onnx_fp32, onnx_optimized
    from tinykd.compress.backend import BuildContext
    from tinykd.compress.model_source import ModelSource

    members = [AutoModelForSequenceClassification.from_pretrained(tiny_teacher) for _ in range(2)]
    torch.nn.init.normal_(members[1].classifier.weight, std=1.0)
    EnsembleForSequenceClassification.from_members(members, [1.0, 1.0]).save_pretrained(tmp_path / "teacher")
    AutoTokenizer.from_pretrained(tiny_teacher).save_pretrained(tmp_path / "teacher")
    source = ModelSource("teacher", tmp_path / "teacher", "hf", False)
    context = BuildContext(calibration=[], built=lambda name: tmp_path / name)
    facts = {}
    for module, name in ((onnx_fp32, "onnx-fp32"), (onnx_optimized, "onnx-optimized")):
        (tmp_path / name).mkdir()
        facts[name] = module.build(source, tmp_path / name, context)
    assert facts["onnx-optimized"]["max_abs_logit_diff_vs_torch"] <= 1e-4
    assert facts["onnx-optimized"]["fused_operators"]["Attention"] == 2 * members[0].config.num_hidden_layers
