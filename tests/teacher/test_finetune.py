"""The teacher stage on a tiny random BERT (any AutoModelForSequenceClassification dir is a valid base)."""

from __future__ import annotations

import json

from tests.conftest import file_task, write_config
from tinykd import data_stage
from tinykd.artifacts import RunPaths
from tinykd.config_loading import load_config
from tinykd.teacher import finetune


def _config(tmp_path, files, teacher_dir, **teacher):
    spec = {"base": str(teacher_dir), "epochs": 8, "batch_size": 16, "learning_rate": 3e-3, "warmup_ratio": 0.1,
            "save_steps": 10, **teacher}
    return load_config(write_config(tmp_path / "c.yaml", {"task": file_task(files), "teacher": spec}))


def test_teacher_learns_the_task_and_writes_its_artifacts(sentiment_files, tiny_teacher, tmp_path):
    config = _config(tmp_path, sentiment_files, tiny_teacher)
    paths = RunPaths(tmp_path / "run")
    data_stage.run(config, paths)
    result = finetune.run(config, paths)
    # The synthetic task is decided by one cue word: a working fine-tune learns it, chance is 50%.
    assert result.test_accuracy >= 0.9, result.summary()
    metrics = json.loads(paths.teacher_metrics.read_text())
    assert set(metrics["test"]) >= {"accuracy", "macro_f1", "per_class", "confusion_matrix"}
    assert sum(map(sum, metrics["test"]["confusion_matrix"])) == 60
    assert metrics["test"]["per_class"]["positive"]["support"] == 30
    assert metrics["train_seconds"] > 0 and metrics["train_examples_per_second"] > 0
    assert metrics["best_on_dev"]["dev_accuracy"] == metrics["dev"]["accuracy"]
    assert (paths.teacher_model / "config.json").is_file() and (paths.teacher_model / "tokenizer.json").is_file()
    assert not paths.teacher_checkpoints.exists()  # resume checkpoints are removed once the model is written
    assert finetune.run(config, paths).skipped  # unchanged config and data: nothing to do


def test_frozen_embeddings_stay_fixed(sentiment_files, tiny_teacher, tmp_path):
    from safetensors.torch import load_file

    config = _config(tmp_path, sentiment_files, tiny_teacher, epochs=1, freeze_embeddings=True)
    paths = RunPaths(tmp_path / "run")
    data_stage.run(config, paths)
    finetune.run(config, paths)
    key = "bert.embeddings.word_embeddings.weight"
    before, after = load_file(tiny_teacher / "model.safetensors"), load_file(paths.teacher_model / "model.safetensors")
    assert (before[key] == after[key]).all()
    layer = "bert.encoder.layer.0.attention.self.query.weight"
    assert not (before[layer] == after[layer]).all()


def test_mean_pool_head_trains_saves_and_loads_with_auto_classes(sentiment_files, tiny_teacher, tmp_path):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    config = _config(tmp_path, sentiment_files, tiny_teacher, head="mean")
    paths = RunPaths(tmp_path / "run")
    data_stage.run(config, paths)
    result = finetune.run(config, paths)
    assert result.test_accuracy >= 0.9, result.summary()
    metrics = json.loads(paths.teacher_metrics.read_text())
    assert metrics["head"] == "mean"
    model = AutoModelForSequenceClassification.from_pretrained(paths.teacher_model).eval()
    assert type(model).__name__ == "MeanPoolForSequenceClassification"
    tokenizer = AutoTokenizer.from_pretrained(paths.teacher_model)
    batch = tokenizer(["很好的酒店", "太差了"], padding=True, return_tensors="pt")
    alone = tokenizer(["太差了"], return_tensors="pt")
    with torch.no_grad():  # padding does not change a row's logits: the mean ignores padded positions
        torch.testing.assert_close(model(**batch).logits[1], model(**alone).logits[0], atol=1e-5, rtol=1e-5)


def test_a_local_base_counts_by_its_files(sentiment_files, tiny_teacher, tmp_path):
    """Re-saving another model into the same local base dir re-trains the teacher: the path alone is not the input."""
    from tests.conftest import sentiment_rows
    from tests.tiny_models import save_tiny_teacher

    config = _config(tmp_path, sentiment_files, tiny_teacher, epochs=1)
    paths = RunPaths(tmp_path / "run")
    data_stage.run(config, paths)
    first = finetune.run(config, paths)
    assert not first.skipped and finetune.run(config, paths).skipped
    save_tiny_teacher(tiny_teacher, [text for _, text in sentiment_rows(360)], seed=1)  # other weights, same path
    assert not finetune.run(config, paths).skipped


def test_the_same_config_trains_the_same_teacher(sentiment_files, tiny_teacher, tmp_path):
    """A new head is drawn from torch's global RNG, which starts at a random seed in every process: the stage seeds it
    from tinykd.teacher.seed first, so two runs give one model (the default e2e's teacher scored 74.5 and 78.0 % before)."""
    import torch
    from safetensors.torch import load_file

    config = _config(tmp_path, sentiment_files, tiny_teacher, epochs=1, head="mean")
    weights = []
    for run, rng in (("a", 1), ("b", 2)):
        torch.manual_seed(rng)  # what an unseeded process would start from
        paths = RunPaths(tmp_path / run)
        data_stage.run(config, paths)
        finetune.run(config, paths)
        weights.append(load_file(paths.teacher_model / "model.safetensors"))
    assert weights[0].keys() == weights[1].keys()
    for key in weights[0]:
        assert torch.equal(weights[0][key], weights[1][key]), key


def test_a_mean_pool_classifier_declares_its_encoders_special_tokens(tiny_teacher):
    # HF's Trainer reads the pad/bos/eos ids at the config's top level; where they are missing it copies them from the
    # tokenizer and warns at the start of every fine-tune (seen on each teacher and bi-encoder run).
    from transformers import AutoTokenizer
    from transformers.trainer_utils import align_special_tokens

    from tinykd.teacher.mean_pool import MeanPoolForSequenceClassification

    model = MeanPoolForSequenceClassification.from_encoder(str(tiny_teacher), num_labels=2)
    tokenizer = AutoTokenizer.from_pretrained(tiny_teacher)
    assert model.config.pad_token_id == model.config.encoder.pad_token_id == tokenizer.pad_token_id
    before = model.config.to_dict()
    align_special_tokens(model, tokenizer)  # what the Trainer does first: nothing to change
    assert model.config.to_dict() == before
