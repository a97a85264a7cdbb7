"""Torch-TensorRT fp16 on CUDA (`pip install .[tensorrt]`): the model compiled through the dynamo frontend
for a range of batch sizes and lengths, saved as an exported program.

Not exercised on tinykd's CPU machines: the tests that run it are marked `tensorrt` and skip with the
reason `unavailable()` gives.
"""

from __future__ import annotations

from pathlib import Path

import torch

from tinykd.compress.backend import BuildContext
from tinykd.compress.cuda_runner import CudaRunner, cuda_missing
from tinykd.compress.model_source import ModelSource
from tinykd.onnx_graph import LogitsOnly

FILE = "model.ep"
MAX_BATCH, MAX_LENGTH = 64, 512


def unavailable() -> str | None:
    missing = cuda_missing()
    if missing:
        return missing
    try:
        import torch_tensorrt  # noqa: F401
    except ImportError:
        return "needs torch-tensorrt (pip install '.[tensorrt]')"
    return None


def build(source: ModelSource, out: Path, context: BuildContext) -> dict:
    import torch_tensorrt

    names = source.input_names
    example = {n: torch.from_numpy(a).cuda() for n, a in source.example_inputs().items()}
    shapes = [torch_tensorrt.Input(min_shape=(1, 1), opt_shape=(8, 128), max_shape=(MAX_BATCH, MAX_LENGTH),
                                   dtype=torch.int64) for _ in names]
    model = LogitsOnly(source.load_torch().half().cuda(), names).eval()
    compiled = torch_tensorrt.compile(model, ir="dynamo", inputs=shapes, enabled_precisions={torch.float16},
                                      truncate_double=True)
    torch_tensorrt.save(compiled, str(out / FILE), inputs=[example[n] for n in names])
    return {"file": FILE, "precision": "fp16", "max_batch": MAX_BATCH, "max_length": MAX_LENGTH,
            "torch_tensorrt": torch_tensorrt.__version__}


def load(source: ModelSource, out: Path, threads: int, spin_wait: bool = True) -> CudaRunner:
    import torch_tensorrt  # noqa: F401  registers the TensorRT runtime ops the saved program calls

    return CudaRunner(torch.export.load(str(out / FILE)).module(), names=source.input_names)
