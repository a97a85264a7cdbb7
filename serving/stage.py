"""Stage `serve`: the model × backend of `serve` (default: the verdict's pick) behind a Ray Serve application until
Ctrl-C (or `serve.duration_s`). See `deployment` for the routes and the batching."""

from __future__ import annotations

import time
from dataclasses import dataclass

from tinykd.artifacts import RunPaths
from tinykd.config import SERVE_INSTALL_HINT, Config
from tinykd.config.label import installed
from tinykd.errors import ConfigError
from tinykd.serving.deployment import running_app
from tinykd.serving.target import default_target, served_model


@dataclass(frozen=True)
class ServeResult:
    url: str
    model: str
    backend: str
    served_s: float

    def summary(self) -> str:
        return f"serve: {self.model}/{self.backend} at {self.url} for {self.served_s:.0f} s, stopped"


def require_serving_packages(where: str = "") -> None:
    missing = [p for p in ("ray", "starlette", "mlperf_loadgen") if not installed(p)]
    if missing:
        raise ConfigError(f"{where + ': ' if where else ''}{SERVE_INSTALL_HINT} (missing: {', '.join(missing)})")


def run(config: Config, paths: RunPaths) -> ServeResult:
    require_serving_packages()
    model, backend = default_target(config, paths)
    served = served_model(config, paths, model, backend)
    spec = config.serve
    started = time.perf_counter()
    with running_app(served, spec) as app:
        example = '{"text": "..."}' if not served.pair else '{"text_a": "...", "text_b": "..."}'
        print(f"serving {model}/{backend} at {app.url} ({spec.replicas} replica(s) x {spec.threads} thread(s), "
              f"batches of up to {spec.max_batch_size} within {spec.batch_wait_timeout_s * 1000:g} ms)\n"
              f"  curl -s {app.url} -H 'content-type: application/json' -d '{example}'\n"
              f"  GET {app.url}health, {app.url}stats; Ctrl-C stops", flush=True)
        try:
            while spec.duration_s is None or time.perf_counter() - started < spec.duration_s:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
    return ServeResult(app.url, model, backend, time.perf_counter() - started)
