"""Intel Extension for PyTorch (CPU): the fp32 model optimized by IPEX, served from IPEX's own environment.

IPEX 2.8 needs torch 2.8 and tinykd runs torch 2.13, so IPEX cannot be imported here: `make ipex-env`
builds `.venv-ipex` (torch 2.8 + IPEX 2.8 + transformers; `TINYKD_IPEX_PYTHON` names another interpreter),
and `tinykd.compress.ipex_worker` runs there (the make target installs tinykd into it, editable and without
dependencies) so it loads the model directory with the same code as `ModelSource.load_torch`.

- `build` starts the worker once on the model (which proves the environment serves it, and settles the
  optimization path) and writes `backend.json`: the environment's torch/IPEX/transformers versions, the path
  (`jit`: ipex.optimize + torch.jit.trace + freeze; `optimize`: ipex.optimize run eagerly; `auto` takes jit
  when it traces and matches eager, else optimize), why jit was given up if it was, the max |logit
  difference| vs torch eager on the example rows, and the source directory. IPEX optimizes at load time,
  so there are no new weights: the model is the fp32 `save_pretrained` directory itself.
- `load` starts one worker process per runner with `threads` intra-op threads (torch.set_num_threads and
  OMP_NUM_THREADS there); a call sends the inputs and waits for the logits (length-prefixed pickle frames
  on the worker's stdin/stdout, see `tinykd.compress.ipex_worker`). `close()` (or the runner being garbage
  collected, or interpreter exit) closes the worker's stdin, so it exits, and reaps it.

IPC cost, part of every timed call (measured on this project's 2-core machine, 2 threads, while other
jobs loaded it): a batch of 32 x 128 int64 `input_ids` + `attention_mask` (64 KiB) sent to a worker serving
a trivial BOW student took 0.37 ms best / 0.60-0.69 ms median per call, against 0.14 ms best / 0.34 ms
median for the same model in-process: about 0.25-0.35 ms of pickling, pipe and wake-up per call, under
0.05 % of a 4-layer, hidden-384 BERT call at that batch (~1.7 s here). Starting a worker (importing torch
2.8 + IPEX, loading, optimizing, tracing) takes 6-7 s; closing one ~1.3 s.

Paths measured at batch 32 (torch 2.8.0, IPEX 2.8.0): on a 4-layer hidden-384 BERT (seq 128, 2 threads)
`jit` is the fastest (~1.2x torch 2.13 eager through the worker, ~1.1x `optimize`); on a 2-layer hidden-32
BERT (seq 64, 1 thread) torch eager beats both (TorchScript's per-op cost dominates a model that small)
and `jit` is the slowest (~0.75x eager), so `auto` favours the transformer students this backend is for.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import tempfile
import threading
import weakref
from pathlib import Path
from typing import IO, Any

import numpy as np

from tinykd.compress.backend import BuildContext
from tinykd.compress.ipex_worker import read_frame, write_frame
from tinykd.compress.model_source import ModelSource
from tinykd.errors import ArtifactError

ROOT = Path(__file__).resolve().parents[1]
PYTHON_ENV = "TINYKD_IPEX_PYTHON"
IPEX_PYTHON = ROOT / ".venv-ipex" / "bin" / "python"
MAKE_HINT = "run `make ipex-env` to build the IPEX environment (~7 GB)"
BACKEND_FILE = "backend.json"
DEFAULT_PATH = "auto"  # jit where it traces and matches eager (see the measurements above)
STOP_TIMEOUT_S = 10.0


def ipex_python() -> Path:
    """The interpreter of the IPEX environment (it may not exist)."""
    named = os.environ.get(PYTHON_ENV)
    return Path(named) if named else IPEX_PYTHON


def _worker_env(threads: int | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    # `import intel_extension_for_pytorch` imports torch._inductor, whose import starts a pool of compile
    # subprocesses (one per core) unless compile threads are 1; the worker never compiles with inductor.
    env["TORCHINDUCTOR_COMPILE_THREADS"] = "1"
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


@functools.lru_cache(maxsize=None)
def _import_check(python: str) -> str | None:
    try:
        done = subprocess.run([python, "-m", "tinykd.compress.ipex_worker", "--check"], cwd=ROOT, env=_worker_env(),
                              capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"the IPEX environment's {python} does not run ({error}); {MAKE_HINT}"
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        last = lines[-1] if lines else f"exit code {done.returncode}"
        return f"the IPEX environment's {python} cannot import IPEX or tinykd's load path ({last}); " \
               f"rebuild it: rm -rf .venv-ipex && make ipex-env"
    return None


def unavailable() -> str | None:
    python = ipex_python()
    if not python.exists():
        return f"no IPEX environment ({python} is missing): {MAKE_HINT}"
    return _import_check(str(python))


def _stop(process: subprocess.Popen, stderr: IO[bytes]) -> None:
    """End the worker: EOF on its stdin, then a kill if it has not exited in time; always reaped."""
    try:
        if process.poll() is None:
            try:
                process.stdin.close()
            except OSError:
                pass
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    finally:
        for stream in (process.stdin, process.stdout, stderr):
            try:
                stream.close()
            except (OSError, ValueError):
                pass


class IpexRunner:
    """Tokenized int64 inputs in, (B, K) float32 logits out, computed by a worker in the IPEX environment."""

    def __init__(self, source: ModelSource, threads: int, path: str = DEFAULT_PATH) -> None:
        reason = unavailable()
        if reason:
            raise ArtifactError(f"backend ipex cannot run here: {reason}")
        self.threads, self._lock = threads, threading.Lock()
        self._stderr = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [str(ipex_python()), "-m", "tinykd.compress.ipex_worker"], cwd=ROOT, env=_worker_env(threads),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
        )
        self._finalizer = weakref.finalize(self, _stop, self.process, self._stderr)
        try:
            self._send({"directory": str(source.directory), "family": source.family, "pair": source.pair,
                        "threads": threads, "path": path, "example": source.example_inputs()})
            hello = self._receive()
            if not hello.get("ready"):
                raise ArtifactError(f"ipex worker could not load {source.directory}:\n{hello.get('error')}")
        except BaseException:
            self.close()
            raise
        self.facts: dict[str, Any] = {k: v for k, v in hello.items() if k not in ("ready", "base_rss_mb")}
        self.worker_base_rss_mb: float = hello.get("base_rss_mb", 0.0)  # the worker after imports, before the model

    def __call__(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        with self._lock:
            self._send({name: np.ascontiguousarray(array, dtype=np.int64) for name, array in inputs.items()})
            status, value = self._receive()
        if status != "ok":
            raise ArtifactError(f"ipex worker failed on inputs {_shapes(inputs)}:\n{value}")
        return value

    def close(self) -> None:
        self._finalizer()

    def __enter__(self) -> IpexRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, obj: Any) -> None:
        if not self._finalizer.alive:
            raise ArtifactError("the ipex runner is closed")
        try:
            write_frame(self.process.stdin, obj)
        except (BrokenPipeError, OSError) as error:
            raise self._died(error) from None

    def _receive(self) -> Any:
        try:
            frame = read_frame(self.process.stdout)
        except (EOFError, OSError) as error:
            raise self._died(error) from None
        if frame is None:
            raise self._died(EOFError("no reply"))
        return frame

    def _died(self, error: BaseException) -> ArtifactError:
        try:
            code = self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            code = None
        self._stderr.seek(0)
        tail = self._stderr.read().decode("utf-8", "replace").strip().splitlines()[-15:]
        self.close()
        return ArtifactError(f"the ipex worker ({ipex_python()}) stopped ({error}; exit code {code}):\n"
                             + "\n".join(tail))


def _shapes(inputs: dict[str, np.ndarray]) -> str:
    return ", ".join(f"{name} {tuple(np.shape(array))}" for name, array in inputs.items())


def build(source: ModelSource, out: Path, context: BuildContext) -> dict:
    with IpexRunner(source, threads=1, path=DEFAULT_PATH) as runner:
        facts = dict(runner.facts)
    record = {
        "source": str(source.directory),  # the fp32 weights IPEX optimizes when a runner loads
        "python": str(ipex_python()),
        "torch": facts["torch"], "ipex": facts["ipex"], "transformers": facts["transformers"],
        "path": facts["path"], "jit_fallback": facts["fallback"], "max_abs_diff_vs_eager": facts["max_abs_diff"],
    }
    (out / BACKEND_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return record


def load(source: ModelSource, out: Path, threads: int, spin_wait: bool = True) -> IpexRunner:
    recorded = out / BACKEND_FILE
    path = json.loads(recorded.read_text(encoding="utf-8"))["path"] if recorded.is_file() else DEFAULT_PATH
    return IpexRunner(source, threads, path=path)
