"""Peak memory of serving one model × backend, measured in a fresh process of its own.

Timing runs every model in one process (so ratios are fair), but there a process-wide peak RSS would
mix models: the teacher's peak would show in every later student's figure, and freed memory is not
given back to the OS. So each model × backend is loaded once more in a short-lived child process that
imports the serving libraries, records its RSS (the baseline) and restarts the peak there, loads the
runner, serves a few calls at the sweep's largest batch of its longest rows, and reports its peak RSS.
`model_rss_mb` = peak − baseline is what the model adds; `peak_rss_mb` is what a serving process of
that model needs (the baseline is ~400 MB of torch and transformers alone). A backend that serves from a
worker process of its own (ipex) counts it too: the worker's baseline is added to the baseline and its peak,
read once the runner is closed and the worker reaped, to the peak.

Run as `python -m tinykd.benchmarks.footprint` with the JSON spec on stdin; it prints one JSON line.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class Footprint:
    base_rss_mb: float  # the child after importing torch/transformers/the backend, before loading the model
    peak_rss_mb: float  # the child's peak (ru_maxrss) after loading the model and serving `calls` calls
    model_rss_mb: float  # peak − base


@dataclass(frozen=True)
class FootprintSpec:
    name: str
    directory: str  # the model's fp32 save_pretrained dir
    family: str
    pair: bool
    backend: str
    artifact: str  # compressed/<model>/<backend>/
    threads: int
    batch: int
    seq_len: int
    texts_a: list[str]
    texts_b: list[str] | None
    calls: int = 3


def measure_footprint(spec: FootprintSpec, timeout_s: float = 600) -> Footprint:
    env = os.environ | {"TOKENIZERS_PARALLELISM": "true" if spec.threads > 1 else "false"}
    done = subprocess.run([sys.executable, "-m", "tinykd.benchmarks.footprint"], input=json.dumps(asdict(spec)),
                          capture_output=True, text=True, env=env, timeout=timeout_s)
    if done.returncode != 0:
        raise RuntimeError(f"footprint of {spec.name}/{spec.backend} failed (exit {done.returncode}):\n"
                           f"{done.stderr[-2000:]}")
    return Footprint(**json.loads(done.stdout.strip().splitlines()[-1]))


def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _reset_peak() -> None:
    """Start the peak afresh at the baseline (Linux: VmHWM), so import-time spikes do not count as the model's."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _peak_rss_mb() -> float:
    with contextlib.suppress(OSError), open("/proc/self/status", encoding="utf-8") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**10  # kB
    return _maxrss_mb(resource.RUSAGE_SELF)  # lifetime peak: where /proc is not there


def _maxrss_mb(who: int) -> float:
    """ru_maxrss of this process, or (RUSAGE_CHILDREN) of its largest reaped child."""
    peak = resource.getrusage(who).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux


def _child() -> None:
    spec = FootprintSpec(**json.loads(sys.stdin.read()))
    import torch
    import transformers  # noqa: F401  imported before the baseline: every backend's process has it

    from tinykd.compress.backend import backend, load_runner
    from tinykd.compress.model_source import ModelSource

    backend(spec.backend).load_module()
    torch.set_num_threads(spec.threads)
    base = rss_mb()
    _reset_peak()
    source = ModelSource(spec.name, Path(spec.directory), spec.family, spec.pair)
    runner = load_runner(spec.backend, source, Path(spec.artifact), spec.threads)
    for _ in range(spec.calls):
        runner(source.encode(spec.texts_a, spec.texts_b, spec.seq_len))
    peak = max(_peak_rss_mb(), rss_mb())
    if hasattr(runner, "worker_base_rss_mb"):  # served by a worker process (ipex)
        base += runner.worker_base_rss_mb
        runner.close()  # ends and reaps the worker: its peak is then the largest in RUSAGE_CHILDREN
        peak += _maxrss_mb(resource.RUSAGE_CHILDREN)
    print(json.dumps(asdict(Footprint(base, peak, peak - base))))


if __name__ == "__main__":
    _child()
