"""What this machine could do: its GEMM throughput, and the FLOPs a model's forward actually needs.

Achieved GFLOP/s = forward FLOPs / model-only seconds; divided by the GEMM peak measured in the same
run on the same device, it says how much of the machine a model's forward uses (small models at batch 1
are bound by overheads, not arithmetic). The CPU peak is fp32 with the cell's threads; the CUDA peak is
fp16 (what the GPU backends compute in), so a GPU row is never judged against the CPU.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from tinykd.benchmarks.harness import ShapeKey, pinned_threads, shape_key
from tinykd.compress.model_source import to_torch

GEMM_SIZES = (1024, 2048)
CUDA_GEMM_SIZES = (4096, 8192)
GEMM_REPEATS = 5


def _cpu_attention_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    """torch counts SDPA's CUDA kernels but not the CPU one it dispatches to here: same formula, Q·Kᵀ + P·V."""
    return sdpa_flop_count(query_shape, key_shape, value_shape)


CPU_ATTENTION = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_attention_flops}


@dataclass(frozen=True)
class GemmPeak:
    threads: int
    gflops: float  # best of every size and repeat (and of every measurement `best_of` combined): 2·n³ / seconds
    size: int  # the n that reached it
    device: str = "cpu"
    dtype: str = "float32"
    samples: tuple[float, ...] = ()  # each measurement's best, in the order taken (one per bench round)

    def label(self) -> str:
        return f"{self.device} {self.dtype}" + (f", {self.threads} thread(s)" if self.device == "cpu" else "")

    @property
    def precision(self) -> str:
        """The backend precision this peak bounds (`BackendInfo.precision`)."""
        return {"float32": "fp32", "float16": "fp16"}.get(self.dtype, self.dtype)

    @property
    def spread_pct(self) -> float:
        """(best − worst) / best of the measurements: how much else was running on the cores at times."""
        return (max(self.samples) - min(self.samples)) / max(self.samples) * 100 if self.samples else 0.0


def best_of(peaks: list[GemmPeak]) -> GemmPeak:
    """One peak from several measurements of the same device and threads: the best, with every sample kept.

    A single measurement taken while something else used the cores reads low, and every share of it then
    reads high (the bench once printed 148 % of an fp32 peak); the best of several, spread through the run,
    is the machine's peak."""
    best = max(peaks, key=lambda p: p.gflops)
    return replace(best, samples=tuple(s for p in peaks for s in (p.samples or (p.gflops,))))


def gemm_peak(threads: int, sizes: tuple[int, ...] | None = None, repeats: int | None = None,
              device: str = "cpu") -> GemmPeak:
    """Best square-matmul throughput: fp32 with `threads` torch threads on the CPU, fp16 on CUDA
    (one untimed call per size first; CUDA timings synchronize before and after each product)."""
    cuda = device == "cuda"
    sizes, repeats = sizes or (CUDA_GEMM_SIZES if cuda else GEMM_SIZES), repeats or GEMM_REPEATS
    dtype = torch.float16 if cuda else torch.float32
    best = GemmPeak(threads, 0.0, 0, device, str(dtype).removeprefix("torch."))
    generator = torch.Generator().manual_seed(0)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    with pinned_threads(threads):
        for n in sizes:
            a, b = (torch.randn(n, n, generator=generator).to(device, dtype) for _ in range(2))  # (n, n)
            out = torch.matmul(a, b)
            for _ in range(repeats):
                sync()
                started = time.perf_counter()
                torch.matmul(a, b, out=out)
                sync()
                gflops = 2 * n**3 / (time.perf_counter() - started) / 1e9
                if gflops > best.gflops:
                    best = GemmPeak(threads, gflops, n, best.device, best.dtype)
            del a, b, out
    return replace(best, samples=(best.gflops,))


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
