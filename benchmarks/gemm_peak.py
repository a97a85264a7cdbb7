"""What this machine could do: its fp32 GEMM throughput, and the FLOPs a model's forward actually needs.

Achieved GFLOP/s = forward FLOPs / model-only seconds; divided by the GEMM peak measured in the same
run with the same threads, it says how much of the machine a model's forward uses (small models at
batch 1 are bound by overheads, not arithmetic).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from benchmarks.harness import ShapeKey, pinned_threads, shape_key
from compress.model_source import to_torch

GEMM_SIZES = (1024, 2048)
GEMM_REPEATS = 5


def _cpu_attention_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    """torch counts SDPA's CUDA kernels but not the CPU one it dispatches to here: same formula, Q·Kᵀ + P·V."""
    return sdpa_flop_count(query_shape, key_shape, value_shape)


CPU_ATTENTION = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_attention_flops}


@dataclass(frozen=True)
class GemmPeak:
    threads: int
    gflops: float  # best of every size and repeat: 2·n³ / seconds of torch.matmul on (n, n) fp32
    size: int  # the n that reached it


def gemm_peak(threads: int, sizes: tuple[int, ...] | None = None, repeats: int | None = None) -> GemmPeak:
    """Best fp32 square-matmul throughput with `threads` torch threads (one untimed call per size first)."""
    sizes, repeats = sizes or GEMM_SIZES, repeats or GEMM_REPEATS
    best = GemmPeak(threads, 0.0, 0)
    generator = torch.Generator().manual_seed(0)
    with pinned_threads(threads):
        for n in sizes:
            a, b = torch.randn(n, n, generator=generator), torch.randn(n, n, generator=generator)  # (n, n) fp32
            out = torch.matmul(a, b)
            for _ in range(repeats):
                started = time.perf_counter()
                torch.matmul(a, b, out=out)
                gflops = 2 * n**3 / (time.perf_counter() - started) / 1e9
                if gflops > best.gflops:
                    best = GemmPeak(threads, gflops, n)
    return best


class ForwardFlops:
    """FLOPs of one fp32 forward of `model`, as torch's FlopCounterMode counts them (matmuls, convolutions,
    attention); cached by input shape, since for these models FLOPs depend on shapes, not token values."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self.cache: dict[ShapeKey, int] = {}

    def __call__(self, inputs: dict[str, np.ndarray]) -> int:
        key = shape_key(inputs)
        if key not in self.cache:
            with torch.inference_mode(), FlopCounterMode(display=False, custom_mapping=CPU_ATTENTION) as counter:
                self.model(**to_torch(inputs))
            self.cache[key] = int(counter.get_total_flops())
        return self.cache[key]
