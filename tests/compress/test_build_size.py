"""A build's size counts weight files once: not metadata, tokenizer files or a siamese build's embed/compare graphs;
a build without weights has its fp32 directory's size."""

from __future__ import annotations

import pytest

from tinykd.compress.build_size import build_size_mb


def _write(directory, sizes: dict[str, int]):
    directory.mkdir()
    for name, size in sizes.items():
        (directory / name).write_bytes(b"x" * size)
    return directory


def test_only_weight_files_count_once(tmp_path):
    build = _write(tmp_path / "onnx-fp32", {"model.onnx": 3 * 2**20, "embed.onnx": 2**20, "compare.onnx": 2**10,
                                             "metrics.json": 500, "tokenizer.json": 700, "vocab.txt": 900})
    fp32 = _write(tmp_path / "fp32", {"model.safetensors": 2**20, "config.json": 300})
    assert build_size_mb(build, fp32) == pytest.approx(3.0)


def test_a_build_without_weights_has_its_fp32_size(tmp_path):
    pointer = _write(tmp_path / "torch-fp32", {"metrics.json": 500, "source.json": 100})
    fp32 = _write(tmp_path / "fp32", {"model.safetensors": 2**20, "config.json": 300, "tokenizer_config.json": 80})
    assert build_size_mb(pointer, fp32) == pytest.approx(1.0)
