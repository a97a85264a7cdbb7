"""`teacher.prune_vocabulary`: the teacher is fine-tuned and saved with only the task's tokens (never test's).

Pruning is lossless on the texts it keeps the tokens of, so a pruned teacher trains exactly as the full one
there: same dev accuracy, same logits on dev. A token only the test split has is not kept.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from tests.conftest import file_task, sentiment_rows, write_config, write_tsv
from tests.tiny_models import SPECIALS, char_tokenizer, save_tiny_teacher
from tinykd import data_stage
from tinykd.artifacts import RunPaths
from tinykd.augment import stage as augment_stage
from tinykd.config_loading import load_config
from tinykd.errors import ConfigError
from tinykd.teacher import finetune

TEST_ONLY = "龘"  # in the teacher's vocabulary and in one test row, nowhere in train or dev
UNUSED = "宇宙飞船"  # in the teacher's vocabulary, in no split


@pytest.fixture
def files(tmp_path):
    rows = sentiment_rows(360)
    test = rows[300:]
    test[0] = (test[0][0], TEST_ONLY + test[0][1])
    return {"train": write_tsv(tmp_path / "train.tsv", rows[:240]), "dev": write_tsv(tmp_path / "dev.tsv", rows[240:300]),
            "test": write_tsv(tmp_path / "test.tsv", test)}


@pytest.fixture
def teacher_base(tmp_path_factory):
    texts = [text for _, text in sentiment_rows(360)] + [TEST_ONLY, UNUSED]
    return save_tiny_teacher(tmp_path_factory.mktemp("base"), texts)


def _config(tmp_path, files, base, augment=None, **teacher):
    sections = {"task": file_task(files), "teacher": {"base": str(base), "epochs": 2, "batch_size": 16,
                                                      "learning_rate": 3e-3, "save_steps": 100, **teacher}}
    if augment:
        sections["augment"] = augment
    return load_config(write_config(tmp_path / "c.yaml", sections))


def _dev_logits(model_dir, texts):
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    with torch.no_grad():
        return model(**tokenizer(texts, padding=True, return_tensors="pt")).logits


def test_a_pruned_teacher_trains_as_the_full_one_on_the_task_tokens(files, teacher_base, tmp_path):
    full_paths, pruned_paths = RunPaths(tmp_path / "full"), RunPaths(tmp_path / "pruned")
    full, pruned = _config(tmp_path, files, teacher_base), _config(tmp_path, files, teacher_base, prune_vocabulary=True)
    for config, paths in ((full, full_paths), (pruned, pruned_paths)):
        data_stage.run(config, paths)
        finetune.run(config, paths)

    metrics = json.loads(pruned_paths.teacher_metrics.read_text())
    train_dev = [text for split in ("train", "dev") for text in pd.read_parquet(pruned_paths.split(split))["text_a"]]
    chars = {c for text in train_dev for c in text}
    before = len(char_tokenizer([text for _, text in sentiment_rows(360)] + [TEST_ONLY, UNUSED]))
    assert metrics["vocabulary"] == {"vocabulary": len(SPECIALS) + len(chars), "vocabulary_before": before,
                                     "texts": len(set(train_dev))}
    assert json.loads(full_paths.teacher_metrics.read_text())["vocabulary"] is None

    saved = AutoTokenizer.from_pretrained(pruned_paths.teacher_model)
    assert len(saved) == metrics["vocabulary"]["vocabulary"]
    assert saved.tokenize(TEST_ONLY + UNUSED) == ["[UNK]"] * 5  # test-only and unused characters were dropped
    assert AutoTokenizer.from_pretrained(full_paths.teacher_model).tokenize(TEST_ONLY) == [TEST_ONLY]

    dev = pd.read_parquet(pruned_paths.split("dev"))["text_a"].tolist()
    torch.testing.assert_close(_dev_logits(pruned_paths.teacher_model, dev), _dev_logits(full_paths.teacher_model, dev),
                               rtol=0, atol=1e-4)
    full_metrics = json.loads(full_paths.teacher_metrics.read_text())
    assert metrics["dev"]["accuracy"] == full_metrics["dev"]["accuracy"]


def test_the_pruned_vocabulary_covers_the_augmented_rows_and_follows_them(files, teacher_base, tmp_path):
    augment = {"multiplier": 2, "seed": 0, "ops": [{"op": "unk", "p": 0.2}, {"op": "nsample"}]}
    config = _config(tmp_path, files, teacher_base, augment=augment, prune_vocabulary=True, epochs=1)
    paths = RunPaths(tmp_path / "run")
    data_stage.run(config, paths)
    augment_stage.run(config, paths)
    # These ops only recombine train words; an op that brings new words (a textattack one) is stood in for by
    # one planted row whose characters no split has.
    rows = pd.read_parquet(paths.augmented)
    planted = pd.DataFrame({"text_a": [UNUSED], "source_row": [0], "op": ["unk"]}).astype(rows.dtypes.to_dict())
    pd.concat([rows, planted], ignore_index=True).to_parquet(paths.augmented)
    finetune.run(config, paths)
    saved = AutoTokenizer.from_pretrained(paths.teacher_model)
    base = AutoTokenizer.from_pretrained(teacher_base)
    assert saved.tokenize(UNUSED) == list(UNUSED) and saved.tokenize(TEST_ONLY) == ["[UNK]"]
    for text in pd.read_parquet(paths.augmented)["text_a"]:  # "[UNK]" rows of the unk op included
        assert saved.tokenize(text) == base.tokenize(text)
    assert finetune.run(config, paths).skipped

    # Other augmented rows may need other tokens: the teacher trains again.
    changed = _config(tmp_path, files, teacher_base, augment=dict(augment, seed=1), prune_vocabulary=True, epochs=1)
    augment_stage.run(changed, paths)
    assert not finetune.run(changed, paths).skipped


def test_a_tokenizer_pruning_cannot_rewrite_is_a_config_error_when_the_teacher_stage_meets_it(files, teacher_base,
                                                                                               tmp_path):
    """A hub teacher's tokenizer is known only once the stage loads it; a BPE one stops the stage there."""
    from tokenizers import Tokenizer
    from tokenizers.models import BPE
    from transformers import PreTrainedTokenizerFast

    config = _config(tmp_path, files, teacher_base, prune_vocabulary=True)
    bpe = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(BPE({"[UNK]": 0, "a": 1}, [], unk_token="[UNK]")),
                                  unk_token="[UNK]")
    model = AutoModelForSequenceClassification.from_pretrained(teacher_base)
    with pytest.raises(ConfigError) as caught:
        finetune._pruned(model, bpe, config, RunPaths(tmp_path / "run"))
    line = (tmp_path / "c.yaml").read_text().splitlines().index("  prune_vocabulary: true") + 1
    assert str(caught.value) == (f"{tmp_path / 'c.yaml'}:{line}: teacher.prune_vocabulary: the teacher's tokenizer is "
                                 f"BPE (teacher.base {teacher_base}); vocabulary pruning supports Unigram, WordPiece "
                                 "and WordLevel tokenizers only: set prune_vocabulary: false")
