"""GPU backends: a clear skip reason without CUDA; on a CUDA machine, fp16 / compiled logits match fp32."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tinykd.compress import tensorrt, torch_compile_cuda, torch_fp16_cuda
from tinykd.compress.backend import BuildContext
from tinykd.compress.model_source import ModelSource, to_torch
from tinykd.compress.onnx_export import verification_batches
from tinykd.compress.stage import backend_reason

FP16_ATOL = 2e-2  # fp16 vs fp32 logits of a tiny BERT


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_without_cuda_every_gpu_backend_says_why_it_is_skipped():
    for module in (torch_fp16_cuda, torch_compile_cuda, tensorrt):
        assert "no CUDA device" in module.unavailable()
    assert "no CUDA device" in backend_reason("torch-fp16-cuda", "hf")
    assert backend_reason("tensorrt", "small") == "does not apply to 'small' models"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("module", [torch_fp16_cuda, torch_compile_cuda])
def test_gpu_backend_logits_match_fp32(module, tiny_teacher, tmp_path):
    source = ModelSource("teacher", tiny_teacher, "hf", False)
    module.build(source, tmp_path, BuildContext())
    runner, model = module.load(source, tmp_path, threads=1), source.load_torch()
    for batch in verification_batches(source):
        with torch.inference_mode():
            reference = model(**to_torch(batch)).logits.numpy()
        np.testing.assert_allclose(runner(batch), reference, atol=FP16_ATOL)


@pytest.mark.tensorrt
@pytest.mark.skipif(tensorrt.unavailable() is not None, reason=f"tensorrt backend: {tensorrt.unavailable()}")
def test_tensorrt_logits_match_fp32(tiny_teacher, tmp_path):
    source = ModelSource("teacher", tiny_teacher, "hf", False)
    tensorrt.build(source, tmp_path, BuildContext())
    runner, model = tensorrt.load(source, tmp_path, threads=1), source.load_torch()
    for batch in verification_batches(source):
        with torch.inference_mode():
            np.testing.assert_allclose(runner(batch), model(**to_torch(batch)).logits.numpy(), atol=FP16_ATOL)
