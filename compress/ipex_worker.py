"""Serves one tinykd model through Intel Extension for PyTorch, inside the IPEX environment (`make ipex-env`).

IPEX 2.8 needs torch 2.8, so it cannot live in tinykd's environment (torch 2.13): the `ipex` backend
(`compress/ipex.py`) starts this module with `.venv-ipex/bin/python -m tinykd.compress.ipex_worker` and
PYTHONPATH at the checkout, and talks to it over stdin/stdout.

Wire format: frames, each an 8-byte little-endian length then that many bytes of pickle.
    parent -> worker, first frame:  {"directory": str, "family": "hf"|"small", "pair": bool,
                                     "threads": int, "path": "auto"|"jit"|"optimize",
                                     "example": {name: int64 array}}   (traced on, and checked against eager)
    worker -> parent, handshake:    {"ready": True, "torch": ..., "ipex": ..., "transformers": ...,
                                     "path": the path in use, "fallback": why jit was given up, or None,
                                     "max_abs_diff": vs torch eager on the example, "threads": int}
                                    or {"ready": False, "error": traceback text}
    then per request:  {name: int64 array (B, L)}  ->  ("ok", (B, K) float32 array) | ("error", text)
until EOF on stdin, when the worker exits 0. A human-readable ready line goes to stderr.

Paths (both `ipex.optimize(model, dtype=torch.float32)` first):
- `optimize`: the optimized module run eagerly under inference_mode;
- `jit`: then `torch.jit.trace` (kwarg inputs, strict=False) + `torch.jit.freeze`, IPEX's recommended CPU
  inference path for transformers (its graph fusions apply to the frozen TorchScript graph);
- `auto`: `jit` when it traces and matches eager on the example within tolerance, else `optimize`.

The environment has transformers 4.51.3, the version IPEX 2.8 validates (`import intel_extension_for_pytorch`
fails under transformers 5); it reads the directories tinykd's transformers 5 writes.

`python -m tinykd.compress.ipex_worker --check` imports the whole load path and prints the versions as JSON:
the backend's availability check and the last step of `make ipex-env`.
"""

from __future__ import annotations

import os
import pickle
import struct
import sys
import traceback
from typing import Any, BinaryIO

HEADER = struct.Struct("<Q")
TOLERANCE = 1e-4  # max |jit - eager| on the example logits accepted by path 'auto' (float32, same weights)
REFUSE = 1e-3  # a served path whose example logits differ more from torch eager is an error, not a backend


def write_frame(stream: BinaryIO, obj: Any) -> None:
    payload = pickle.dumps(obj, protocol=5)
    stream.write(HEADER.pack(len(payload)))
    stream.write(payload)
    stream.flush()


def read_frame(stream: BinaryIO) -> Any | None:
    """The next object, or None at a clean EOF."""
    header = stream.read(HEADER.size)
    if not header:
        return None
    if len(header) < HEADER.size:
        raise EOFError("truncated frame header")
    (size,) = HEADER.unpack(header)
    payload = stream.read(size)
    if len(payload) < size:
        raise EOFError(f"truncated frame: {len(payload)} of {size} bytes")
    return pickle.loads(payload)


def versions() -> dict[str, str]:
    """Imports everything a model load needs; raises ImportError (with its message) when something is missing."""
    import intel_extension_for_pytorch as ipex
    import torch
    import transformers

    import tinykd.compress.model_source  # noqa: F401  the same load path as ModelSource.load_torch
    import tinykd.teacher.bi_encoder  # noqa: F401
    import tinykd.student.models.registry  # noqa: F401
    import tinykd.teacher.mean_pool  # noqa: F401

    return {"torch": torch.__version__, "ipex": ipex.__version__, "transformers": transformers.__version__}


def _jit(model, example: dict) -> Any:
    import torch

    with torch.no_grad():
        traced = torch.jit.trace(model, example_kwarg_inputs=example, strict=False, check_trace=False)
        traced = torch.jit.freeze(traced)
        for _ in range(2):  # the profiling executor specializes and fuses on the first runs
            traced(**example)
    return traced


def _logits(output) -> Any:
    if isinstance(output, dict):
        return output["logits"]
    if isinstance(output, (tuple, list)):
        return output[0]
    return output.logits


def prepare(request: dict) -> tuple[Any, dict, Any]:
    """The optimized callable, the handshake facts and the grad mode to call it under."""
    from pathlib import Path

    import intel_extension_for_pytorch as ipex
    import torch

    from tinykd.compress.model_source import ModelSource

    threads = int(request["threads"])
    torch.set_num_threads(threads)
    source = ModelSource("ipex", Path(request["directory"]), request["family"], bool(request["pair"]))
    model = source.load_torch()
    example = {name: torch.from_numpy(array) for name, array in request["example"].items()}
    with torch.inference_mode():
        reference = _logits(model(**example)).float()
    # No BatchNorm folding: tinykd's models have no BatchNorm, and the folding passes replace the model by a
    # torch.fx symbolic trace of it, which bakes `labels is not None` in as True (a BOW student then calls
    # cross_entropy(logits, None)). LSTM replacement, weight prepacking and the other defaults stay on.
    # inplace: the fp32 module is not needed again (the reference logits are taken), so one copy of the weights.
    optimized = ipex.optimize(model, dtype=torch.float32, inplace=True, conv_bn_folding=False,
                              linear_bn_folding=False)
    wanted, fallback, runner, path = request.get("path", "auto"), None, None, "optimize"
    if wanted in ("auto", "jit"):
        try:
            traced = _jit(optimized, example)
            with torch.no_grad():
                diff = (_logits(traced(**example)).float() - reference).abs().max().item()
            if wanted == "auto" and not diff <= TOLERANCE:
                raise ValueError(f"traced logits differ from eager by {diff:.3g} > {TOLERANCE}")
            runner, path = traced, "jit"
        except Exception as error:  # noqa: BLE001  any trace failure means: serve the eager optimized module
            if wanted == "jit":
                raise
            fallback = f"{type(error).__name__}: {error}".splitlines()[0][:500]
    if runner is None:
        runner = optimized
    with torch.no_grad():
        diff = (_logits(runner(**example)).float() - reference).abs().max().item()
    if not diff <= REFUSE:
        raise ValueError(f"path {path}: logits differ from torch eager by {diff:.3g} > {REFUSE} on the example rows")
    facts = {**versions(), "path": path, "fallback": fallback, "max_abs_diff": diff, "threads": threads}
    return runner, facts, torch.no_grad if path == "jit" else torch.inference_mode


def serve(inbox: BinaryIO, outbox: BinaryIO) -> int:
    import numpy as np
    import torch

    request = read_frame(inbox)
    if request is None:
        return 0
    try:
        import intel_extension_for_pytorch  # noqa: F401  imported before the baseline, as in a footprint child
        import psutil
        import transformers  # noqa: F401

        base_rss_mb = psutil.Process().memory_info().rss / 2**20  # before the model: the bench's footprint adds it
        runner, facts, grad_mode = prepare(request)
    except Exception:  # noqa: BLE001  reported to the parent, which raises it as an ArtifactError
        write_frame(outbox, {"ready": False, "error": traceback.format_exc()})
        return 1
    write_frame(outbox, {"ready": True, "base_rss_mb": base_rss_mb, **facts})
    print(f"ipex worker ready: torch {facts['torch']}, ipex {facts['ipex']}, path {facts['path']}, "
          f"{facts['threads']} threads, pid {os.getpid()}", file=sys.stderr, flush=True)
    while (inputs := read_frame(inbox)) is not None:
        try:
            with grad_mode():
                logits = _logits(runner(**{name: torch.from_numpy(array) for name, array in inputs.items()}))
            write_frame(outbox, ("ok", np.ascontiguousarray(logits.float().numpy())))
        except Exception:  # noqa: BLE001  one bad request does not end the worker
            write_frame(outbox, ("error", traceback.format_exc()))
    return 0


def main() -> int:
    if sys.argv[1:] == ["--check"]:
        import json

        print(json.dumps(versions()))
        return 0
    # stdout carries frames only: keep its file descriptor for them and send fd 1 (library prints) to stderr.
    outbox = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return serve(sys.stdin.buffer, outbox)


if __name__ == "__main__":
    sys.exit(main())
