"""Backends one by one on tiny models: the mean-pool teacher's export and fusions, pair inputs, torch int8
weights on disk, and int8 accuracy of quickly trained TextCNN / BiLSTM students on held-out rows."""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer, BertConfig

from tests.conftest import sentiment_rows
from tinykd.compress import onnx_fp32, onnx_int8_dynamic, onnx_int8_static, onnx_optimized, torch_int8
from tinykd.compress.backend import BuildContext
from tinykd.compress.model_source import ModelSource, to_torch
from tinykd.compress.onnx_export import export_onnx, verification_batches
from tinykd.onnx_graph import FP32_ATOL
from tinykd.student.models.registry import build_small_student
from tinykd.student.models.small_student import SmallStudentConfig
from tinykd.student.models.vocabulary import StudentTokenizer, split_text
from tinykd.teacher.mean_pool import MeanPoolConfig, MeanPoolForSequenceClassification

# int8 vs fp32 accuracy of the same trained model on 120 held-out rows: at most 2 rows may flip (1.67 pts).
INT8_BOUND_PTS = 100 * 2 / 120


def _build(backends, source: ModelSource, root, calibration=()) -> dict[str, dict]:
    """Build backends in order into root/<name>, as the stage does; their recorded facts by name."""
    context = BuildContext(calibration=list(calibration), built=lambda name: root / name)
    facts = {}
    for module, name in backends:
        (root / name).mkdir(parents=True)
        facts[name] = module.build(source, root / name, context)
    return facts


@pytest.fixture
def mean_pool_teacher(tiny_teacher, tmp_path) -> ModelSource:
    """The E5 teacher's shape in miniature: tinykd's mean-pool head around a 2-layer, hidden-32 BertModel."""
    torch.manual_seed(0)
    model = MeanPoolForSequenceClassification(MeanPoolConfig(encoder=BertConfig.from_pretrained(tiny_teacher),
                                                             num_labels=2))
    torch.nn.init.normal_(model.classifier.weight, std=1.0)  # logits of order 1, so 1e-4 is a real bound
    directory = tmp_path / "mean_pool"
    model.save_pretrained(directory)
    AutoTokenizer.from_pretrained(tiny_teacher).save_pretrained(directory)
    return ModelSource("teacher", directory, "hf", False)


def test_mean_pool_teacher_exports_and_fuses_every_attention_layer(mean_pool_teacher, tmp_path):
    facts = _build([(onnx_fp32, "onnx-fp32"), (onnx_optimized, "onnx-optimized")], mean_pool_teacher, tmp_path)
    assert facts["onnx-fp32"]["max_abs_logit_diff_vs_torch"] <= FP32_ATOL
    assert facts["onnx-optimized"]["max_abs_logit_diff_vs_torch"] <= FP32_ATOL
    assert facts["onnx-optimized"]["attention_fused"] == "2/2 layers", facts["onnx-optimized"]
    runner = onnx_optimized.load(mean_pool_teacher, tmp_path / "onnx-optimized", 1)
    model = mean_pool_teacher.load_torch()
    for batch in verification_batches(mean_pool_teacher):  # (3, L1) and (1, L2) through one graph
        with torch.inference_mode():
            reference = model(**to_torch(batch)).logits.numpy()
        assert np.abs(reference).max() > 0.1  # a non-trivial comparison
        np.testing.assert_allclose(runner(batch), reference, atol=FP32_ATOL)


def test_export_traces_eager_attention_and_gives_the_model_back_unchanged(mean_pool_teacher, tmp_path):
    model = mean_pool_teacher.load_torch()
    before = model.encoder.config._attn_implementation
    export_onnx(mean_pool_teacher, model, tmp_path / "model.onnx", opset=17)
    assert before != "eager" and model.encoder.config._attn_implementation == before


def test_an_onnx_runner_without_spin_wait_sleeps_between_calls_and_answers_the_same(mean_pool_teacher, tmp_path):
    """`serve.spin_wait: false` (the serving default): ONNX Runtime's intra-op threads sleep between calls."""
    _build([(onnx_fp32, "onnx-fp32")], mean_pool_teacher, tmp_path)
    batch = mean_pool_teacher.encode(["很好", "太差了，不会再来"], None, 16)
    spinning, sleeping = (onnx_fp32.load(mean_pool_teacher, tmp_path / "onnx-fp32", 2, spin_wait=wait)
                          for wait in (True, False))
    options = sleeping.session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert options.intra_op_num_threads == 2
    np.testing.assert_array_equal(spinning(batch), sleeping(batch))


def test_pair_transformer_graph_takes_the_inputs_the_tokenizer_makes(tiny_teacher, tmp_path):
    source = ModelSource("teacher", tiny_teacher, "hf", True)  # "[CLS] a [SEP] b [SEP]" in one sequence
    facts = _build([(onnx_fp32, "onnx-fp32")], source, tmp_path)
    assert facts["onnx-fp32"]["max_abs_logit_diff_vs_torch"] <= FP32_ATOL
    assert onnx_fp32.load(source, tmp_path / "onnx-fp32", 1).names == source.input_names


def _small_source(directory, kind: str, texts: list[str], width: int = 16) -> tuple[ModelSource, torch.nn.Module]:
    tokenizer = StudentTokenizer.build([split_text(t, "char") for t in texts], "char", 500, 1, max_length=64)
    torch.manual_seed(0)
    model = build_small_student(SmallStudentConfig(kind=kind, vocab_size=len(tokenizer), embedding_dim=width,
                                                   hidden_size=width, num_filters=width, kernel_sizes=(2, 3)))
    directory.mkdir(parents=True)
    tokenizer.save_pretrained(directory)  # the weights follow, trained or not
    return ModelSource(kind, directory, "small", False), model


def test_torch_int8_writes_smaller_weights_that_load_back_exactly(tmp_path):
    texts = [text for _, text in sentiment_rows(60)]
    source, model = _small_source(tmp_path / "lstm", "lstm", texts, width=64)
    model.save_pretrained(source.directory)
    facts = _build([(torch_int8, "torch-int8")], source, tmp_path)["torch-int8"]
    assert facts["quantized_modules"] == {"LSTM": 1, "Linear": 2}  # the BiLSTM and the two-layer head
    int8_bytes = (tmp_path / "torch-int8" / torch_int8.FILE).stat().st_size
    fp32_bytes = (source.directory / "model.safetensors").stat().st_size
    assert int8_bytes < 0.4 * fp32_bytes, (int8_bytes, fp32_bytes)  # real int8 weights, not a pointer
    batch = verification_batches(source)[0]
    with torch.inference_mode():
        in_memory = torch_int8.quantize(source.load_torch())(**to_torch(batch)).logits.numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # loading prints nothing to a user (torch.load's TypedStorage notice)
        loaded = torch_int8.load(source, tmp_path / "torch-int8", 1)
    np.testing.assert_array_equal(loaded(batch), in_memory)


def _train(source: ModelSource, model: torch.nn.Module, rows: list[tuple[int, str]]) -> None:
    """A few seconds of full-batch Adam: enough for the cue-word task."""
    batch = to_torch(source.encode([t for _, t in rows], None, 64))
    labels = torch.tensor([label for label, _ in rows])
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    model.train()
    for _ in range(40):
        optimizer.zero_grad()
        model(**batch, labels=labels).loss.backward()
        optimizer.step()
    model.eval().save_pretrained(source.directory)


@pytest.mark.parametrize("kind", ["cnn", "lstm"])
def test_int8_backends_keep_the_accuracy_of_a_trained_student(kind, tmp_path):
    rows = sentiment_rows(360, seed=1)
    train, held_out = rows[:240], rows[240:]
    source, model = _small_source(tmp_path / kind, kind, [t for _, t in train])
    _train(source, model, train)
    calibration = [source.encode([t for _, t in train[i:i + 32]], None, 64) for i in range(0, 64, 32)]
    backends = [(torch_int8, "torch-int8"), (onnx_fp32, "onnx-fp32"), (onnx_int8_dynamic, "onnx-int8-dynamic"),
                (onnx_int8_static, "onnx-int8-static")]
    facts = _build(backends, source, tmp_path / "built", calibration)
    assert facts["onnx-int8-static"]["calibration_rows"] == 64

    batch, labels = source.encode([t for _, t in held_out], None, 64), np.array([label for label, _ in held_out])
    with torch.inference_mode():
        fp32_accuracy = (model(**to_torch(batch)).logits.numpy().argmax(1) == labels).mean()
    assert fp32_accuracy >= 0.9  # the fixture's task is learnt
    for module, name in backends:
        accuracy = (module.load(source, tmp_path / "built" / name, 1)(batch).argmax(1) == labels).mean()
        assert abs(100 * (accuracy - fp32_accuracy)) <= INT8_BOUND_PTS, (name, accuracy, fp32_accuracy)
    shutil.rmtree(tmp_path / "built")


def test_footprint_of_an_onnx_build_is_measured_in_a_child_process(tmp_path):
    """`bench` measures each model x backend's peak RSS in a fresh child (tinykd.benchmarks.footprint): serving an ONNX
    Runtime int8 build there adds memory over the child's imports. (The e2e tests time real models with the
    footprint off; this and the stage test cover it.)"""
    from tinykd.benchmarks.footprint import FootprintSpec, measure_footprint

    texts = [text for _, text in sentiment_rows(60)]
    source, model = _small_source(tmp_path / "cnn", "cnn", texts, width=64)
    model.save_pretrained(source.directory)
    _build([(onnx_fp32, "onnx-fp32"), (onnx_int8_dynamic, "onnx-int8-dynamic")], source, tmp_path / "built")
    spec = FootprintSpec(name="cnn", directory=str(source.directory), family=source.family, pair=False,
                         backend="onnx-int8-dynamic", artifact=str(tmp_path / "built" / "onnx-int8-dynamic"),
                         threads=1, batch=4, seq_len=64, texts_a=texts[:4], texts_b=None)
    footprint = measure_footprint(spec)
    assert footprint.peak_rss_mb > footprint.base_rss_mb > 100  # the child imports torch and onnxruntime
    assert footprint.model_rss_mb == pytest.approx(footprint.peak_rss_mb - footprint.base_rss_mb)
    assert footprint.model_rss_mb > 0
