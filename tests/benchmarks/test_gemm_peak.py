"""The GEMM peak and the forward FLOPs that achieved-vs-peak divides."""

from __future__ import annotations

import pytest
import torch

from tinykd.benchmarks.gemm_peak import ForwardFlops, gemm_peak
from tinykd.compress.model_source import ModelSource


def test_gemm_peak_is_the_best_size():
    peak = gemm_peak(threads=1, sizes=(64, 128), repeats=2)
    assert peak.threads == 1 and peak.size in (64, 128) and peak.gflops > 0


def test_forward_flops_of_the_tiny_bert_by_hand(tiny_teacher):
    source = ModelSource("teacher", tiny_teacher, "hf", pair=False)
    flops = ForwardFlops(source.load_torch())
    inputs = source.encode(["很好的酒店房间", "差"], None, max_length=32)
    B, L = inputs["input_ids"].shape  # (2, 9): [CLS] + 7 characters + [SEP]
    H, I, layers, labels = 32, 64, 2, 2
    per_layer = (2 * B * L * H * H * 4  # Q, K, V and output projections
                 + 2 * B * L * H * I * 2  # feed-forward up and down
                 + 2 * B * L * L * H * 2)  # attention: Q·Kᵀ and P·V over all heads (CPU SDPA kernel counted too)
    expected = layers * per_layer + 2 * B * H * H + 2 * B * H * labels  # + pooler + classifier
    assert (B, L) == (2, 9)
    assert flops(inputs) == expected
    assert len(flops.cache) == 1 and flops(inputs) == expected  # cached by shape


def test_cpu_peak_is_fp32_and_says_so():
    peak = gemm_peak(threads=1, sizes=(64,), repeats=1)
    assert (peak.device, peak.dtype) == ("cpu", "float32") and peak.label() == "cpu float32, 1 thread(s)"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_peak_is_fp16_on_the_gpu():
    peak = gemm_peak(threads=1, sizes=(1024,), repeats=2, device="cuda")
    assert (peak.device, peak.dtype) == ("cuda", "float16") and peak.gflops > 1000
