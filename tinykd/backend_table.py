"""The backends, one row each: the module in compress/ that builds and loads it, and the facts the config, compress,
bench and report need about it. Adding a backend is one module in compress/ (see tinykd.compress.backend for what it
provides) and one row here; `compress.backends` accepts exactly these names.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType


@dataclass(frozen=True)
class BackendInfo:
    name: str
    module: str
    device: str  # "cpu" or "cuda"
    needs: tuple[str, ...] = ()  # backends whose artifacts this one starts from (built first)
    families: tuple[str, ...] = ("hf", "small")  # model families it applies to
    # What its matmuls compute in: a forward in the device's peak dtype (CPU fp32, CUDA fp16) cannot run faster
    # than that peak, so the bench flags a share above 100 % as a measurement error; int8 may exceed it.
    precision: str = "fp32"
    default: bool = True  # in compress.backends unless the config names others (False: another env or a GPU)

    def load_module(self) -> ModuleType:
        return importlib.import_module(self.module)


BACKENDS: dict[str, BackendInfo] = {b.name: b for b in (
    BackendInfo("torch-fp32", "tinykd.compress.torch_fp32", "cpu"),
    BackendInfo("torch-int8", "tinykd.compress.torch_int8", "cpu", precision="int8"),
    BackendInfo("onnx-fp32", "tinykd.compress.onnx_fp32", "cpu"),
    BackendInfo("onnx-optimized", "tinykd.compress.onnx_optimized", "cpu", needs=("onnx-fp32",), families=("hf",)),
    BackendInfo("onnx-int8-dynamic", "tinykd.compress.onnx_int8_dynamic", "cpu", needs=("onnx-fp32",), precision="int8"),
    BackendInfo("onnx-int8-static", "tinykd.compress.onnx_int8_static", "cpu", needs=("onnx-fp32",), precision="int8"),
    BackendInfo("ipex", "tinykd.compress.ipex", "cpu", default=False),
    BackendInfo("torch-fp16-cuda", "tinykd.compress.torch_fp16_cuda", "cuda", precision="fp16", default=False),
    BackendInfo("torch-compile-cuda", "tinykd.compress.torch_compile_cuda", "cuda", precision="fp16", default=False),
    BackendInfo("tensorrt", "tinykd.compress.tensorrt", "cuda", families=("hf",), precision="fp16", default=False),
)}
