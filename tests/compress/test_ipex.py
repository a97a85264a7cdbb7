"""The ipex backend: a worker in IPEX's own environment (`make ipex-env`) serves the same logits as torch fp32.

The tests marked `ipex` skip, naming the reason, where that environment is not built.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.tiny_models import save_tiny_teacher
from tinykd.compress import ipex, torch_fp32
from tinykd.compress.backend import BuildContext
from tinykd.compress.model_source import ModelSource
from tinykd.student.models.registry import build_small_student
from tinykd.student.models.small_student import SmallStudentConfig
from tinykd.student.models.vocabulary import StudentTokenizer, split_text

TEXTS = ["很好的一次体验，下次还会再来", "差", "房间干净，服务不错，价格实惠", "失望",
         "早餐难吃，位置也不好，不推荐"]
TOLERANCE = 1e-4  # float32 logits: IPEX's oneDNN kernels sum in another order than torch's, nothing more


@pytest.fixture(scope="module")
def ipex_env() -> None:
    reason = ipex.unavailable()
    if reason:
        pytest.skip(f"ipex backend unavailable: {reason}")


@pytest.fixture(scope="module")
def bert(tmp_path_factory) -> ModelSource:
    directory = save_tiny_teacher(tmp_path_factory.mktemp("bert"), TEXTS, num_labels=3)
    return ModelSource("teacher", directory, "hf", pair=False)


@pytest.fixture(scope="module")
def bow(tmp_path_factory) -> ModelSource:
    import torch

    directory = tmp_path_factory.mktemp("bow")
    tokenizer = StudentTokenizer.build([split_text(t, "char") for t in TEXTS], "char", max_size=200, min_freq=1,
                                       max_length=32)
    torch.manual_seed(0)
    build_small_student(SmallStudentConfig(kind="bow", vocab_size=len(tokenizer), embedding_dim=16, hidden_size=8,
                                           num_labels=2)).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return ModelSource("bow", directory, "small", pair=False)


def _two_batches(source: ModelSource) -> list[dict[str, np.ndarray]]:
    """Batches of different shapes: (5, longest row) and (2, at most 4 tokens)."""
    return [source.encode(TEXTS, None, 32), source.encode(TEXTS[1:3], None, 4)]


def _assert_matches_torch(source: ModelSource, runner) -> None:
    reference = torch_fp32.load(source, Path("unused"), threads=1)
    shapes = set()
    for inputs in _two_batches(source):
        logits = runner(inputs)
        expected = reference(inputs)
        assert logits.dtype == np.float32 and logits.shape == expected.shape
        np.testing.assert_allclose(logits, expected, rtol=TOLERANCE, atol=TOLERANCE)
        shapes.add(inputs["input_ids"].shape)
    assert len(shapes) == 2


@pytest.mark.ipex
def test_bert_build_load_matches_torch_fp32_and_close_ends_the_worker(ipex_env, bert, tmp_path):
    facts = ipex.build(bert, tmp_path, BuildContext())
    recorded = json.loads((tmp_path / ipex.BACKEND_FILE).read_text(encoding="utf-8"))
    assert recorded == facts and recorded["torch"].startswith("2.8") and recorded["ipex"].startswith("2.8")
    assert recorded["path"] in ("jit", "optimize") and recorded["source"] == str(bert.directory)
    runner = ipex.load(bert, tmp_path, threads=1)
    try:
        assert runner.facts["path"] == recorded["path"]
        _assert_matches_torch(bert, runner)
    finally:
        runner.close()
    assert runner.process.poll() == 0  # exited on EOF and reaped
    with pytest.raises(Exception, match="closed"):
        runner(bert.encode(TEXTS, None, 8))


@pytest.mark.ipex
@pytest.mark.parametrize("path", ["jit", "optimize"])
def test_bow_student_matches_torch_fp32_on_both_paths(ipex_env, bow, path):
    with ipex.IpexRunner(bow, threads=1, path=path) as runner:
        assert runner.facts["path"] == path
        _assert_matches_torch(bow, runner)
        process = runner.process
    assert process.poll() == 0


@pytest.mark.ipex
def test_garbage_collected_runner_ends_its_worker(ipex_env, bow):
    import gc

    runner = ipex.IpexRunner(bow, threads=1, path="optimize")
    process = runner.process
    del runner
    gc.collect()
    assert process.poll() is not None


def test_missing_environment_names_the_make_target(monkeypatch, tmp_path):
    monkeypatch.delenv(ipex.PYTHON_ENV, raising=False)
    monkeypatch.setattr(ipex, "IPEX_PYTHON", tmp_path / "no-venv" / "bin" / "python")
    reason = ipex.unavailable()
    assert reason is not None and "make ipex-env" in reason and "no-venv" in reason


@pytest.mark.ipex
def test_footprint_counts_the_worker_process(ipex_env, bow, tmp_path):
    """The model lives in the worker (torch 2.8 + IPEX, ~400 MB of imports): the footprint adds the worker's
    baseline and peak to the serving parent's, so ipex is not reported as lighter than torch fp32."""
    from dataclasses import replace

    from tinykd.benchmarks.footprint import FootprintSpec, measure_footprint

    ipex.build(bow, tmp_path, BuildContext())
    spec = FootprintSpec(name="bow", directory=str(bow.directory), family="small", pair=False, backend="ipex",
                         artifact=str(tmp_path), threads=1, batch=4, seq_len=32, texts_a=TEXTS[:4], texts_b=None)
    served = measure_footprint(spec)
    reference = measure_footprint(replace(spec, backend="torch-fp32"))  # (torch fp32 reads no artifact)
    assert served.base_rss_mb > reference.base_rss_mb + 150  # the worker's torch 2.8 + IPEX imports
    assert served.peak_rss_mb > reference.peak_rss_mb + 150
    assert served.model_rss_mb > 0
