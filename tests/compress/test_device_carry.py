"""Carrying models to a GPU machine: int8 row storage round-trips within its bound, and an unpacked run
serves the same predictions through the normal stages' layout."""

from __future__ import annotations

import pandas as pd
import torch
from safetensors.torch import load_file, save_file

from tests.conftest import file_task, install_as_teacher, sentiment_rows, write_config
from tinykd.artifacts import RunPaths, directory_digest, read_json
from tinykd.compress.device_carry import MANIFEST, WEIGHTS, dequantize_rows, grow, pack, quantize_rows, shrink, unpack
from tinykd.compress.model_source import ModelSource, to_torch
from tinykd.config_loading import load_config


def test_int8_rows_round_trip_within_half_a_step():
    generator = torch.Generator().manual_seed(0)
    state = {"linear.weight": torch.randn(64, 128, generator=generator) * torch.linspace(0.01, 3, 64)[:, None],
             "linear.bias": torch.randn(64, generator=generator), "position_ids": torch.arange(10)}
    stored = quantize_rows(state)
    assert stored["linear.weight"].dtype == torch.int8 and stored["linear.bias"].dtype == torch.float16
    assert torch.equal(stored["position_ids"], state["position_ids"])
    restored = dequantize_rows(stored)
    assert set(restored) == set(state)
    step = state["linear.weight"].abs().amax(dim=1, keepdim=True) / 127  # (64, 1): one scale per row
    assert ((restored["linear.weight"] - state["linear.weight"]).abs() <= step / 2 + 1e-6).all()


def test_pack_then_unpack_gives_a_run_the_stages_can_read(tmp_path, sentiment_files, tiny_teacher):
    config_path = write_config(tmp_path / "c.yaml", {"task": file_task(sentiment_files)})
    config = load_config(config_path)
    source_run = RunPaths.for_task(config.task.name, tmp_path / "runs")
    source_run.data_dir.mkdir(parents=True)
    for split, n in (("train", 120), ("dev", 30), ("test", 40)):
        rows = [{"text_a": text, "label": label} for label, text in sentiment_rows(n, seed=len(split))]
        pd.DataFrame(rows).to_parquet(source_run.split(split))
    install_as_teacher(source_run, tiny_teacher)

    manifest = pack(str(config_path), [], ["teacher"], tmp_path / "bundle", str(tmp_path / "runs"))
    facts = manifest["models"]["teacher"]
    assert facts["vocabulary"] <= facts["vocabulary_before"]
    assert abs(facts["test_accuracy_carried"] - facts["test_accuracy_fp32"]) <= 0.05  # 2 of 40 rows at most
    assert read_json(tmp_path / "bundle" / MANIFEST)["task"] == config.task.name

    carried = unpack(tmp_path / "bundle", str(tmp_path / "gpu-runs"))
    assert read_json(carried.teacher_metrics) == read_json(source_run.teacher_metrics)  # compress's record of it
    assert (carried.split("test")).is_file()
    original = ModelSource.of("teacher", source_run, pair=False)
    copy = ModelSource.of("teacher", carried, pair=False)
    texts = pd.read_parquet(carried.split("test"))["text_a"].tolist()
    with torch.inference_mode():
        want = original.load_torch()(**to_torch(original.encode(texts, None, 32))).logits
        got = copy.load_torch()(**to_torch(copy.encode(texts, None, 32))).logits  # (40, 2), pruned ids
    assert torch.allclose(got, want, atol=0.05)


def test_shrink_then_grow_keeps_fp16_values_and_int8_rows_exactly(tmp_path):
    """The trip back from a GPU: fp16 storage (half a unit in the last place), and a frozen table that already
    holds int8 values times one scale per row (the teacher's word embeddings after `grow`) comes back unchanged."""
    generator = torch.Generator().manual_seed(0)
    scale = torch.rand(300, 1, generator=generator) + 0.01  # (300, 1)
    codes = torch.randint(-127, 128, (300, 64), generator=generator).float()
    codes[:, 0] = 127  # each row reaches the top code, as a row `quantize_rows` wrote does
    state = {"encoder.embeddings.word_embeddings.weight": codes * scale,
             "encoder.layer.0.dense.weight": torch.randn(128, 64, generator=generator),
             "classifier.bias": torch.randn(2, generator=generator)}
    directory = tmp_path / "model"
    directory.mkdir()
    save_file(state, directory / "model.safetensors")
    shrink(directory, ("word_embeddings",))
    assert not (directory / "model.safetensors").exists()
    stored = load_file(directory / WEIGHTS)
    assert stored["encoder.embeddings.word_embeddings.weight"].dtype == torch.int8
    assert stored["encoder.layer.0.dense.weight"].dtype == torch.float16
    grow(directory)
    back = load_file(directory / "model.safetensors")
    embeddings = "encoder.embeddings.word_embeddings.weight"
    assert torch.allclose(back[embeddings], state[embeddings], rtol=1e-6, atol=0)
    for name in ("encoder.layer.0.dense.weight", "classifier.bias"):
        assert torch.equal(back[name], state[name].half().float())
        assert not torch.equal(back[name], state[name])  # it did round: the check above is not vacuous


def test_grow_writes_the_same_bytes_each_time(tmp_path):
    """The teacher's fingerprint holds its base dir's digest: growing the carried base here and on the GPU
    machine must give identical files, or every stage after the teacher retrains."""
    generator = torch.Generator().manual_seed(1)
    stored = quantize_rows({"w": torch.randn(100, 64, generator=generator), "b": torch.randn(100, generator=generator)})
    digests = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        save_file(stored, tmp_path / name / WEIGHTS)
        grow(tmp_path / name)
        digests.append(directory_digest(tmp_path / name))
    assert digests[0] == digests[1]
