"""`serve` and `load`: a model behind a Ray Serve application, and the MLPerf LoadGen runs that load it."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from tinykd.config.compress import Backend
from tinykd.config.section import Section

SERVE_INSTALL_HINT = "`serve` and `load` need Ray Serve and the MLPerf LoadGen: run `make serve-env` or pip install 'tinykd[serve]'"


class ServeConfig(Section):
    """One model × backend behind HTTP: JSON in, labels and probabilities out, batched across requests."""

    model: str | None = Field(default=None, description="'teacher' or a student; default: the bench verdict's pick "
                              "(the most accurate tinykd model meeting the budget; the TF-IDF floor is not served)")
    backend: Backend | None = Field(default=None, description="default: the verdict's backend for that model; "
                                       "set alone, the most accurate model meeting the budget on it")
    max_batch_size: int = Field(default=8, ge=1, description="texts one model call takes (`@serve.batch`)")
    batch_wait_timeout_s: float = Field(default=0.002, ge=0, description="how long the first text of a batch waits "
                                        "for more before the call runs")
    replicas: int = Field(default=1, ge=1, description="model replicas (Ray actors), each with `threads` threads")
    threads: int = Field(default=2, ge=1, description="intra-op threads per replica (and the CPUs Ray reserves)")
    max_ongoing_requests: int = Field(default=32, ge=1, description="HTTP requests in flight per replica (Ray Serve); at least max_batch_size, so a batch can fill")
    max_queued_requests: int = Field(default=256, ge=1, description="requests waiting at each proxy beyond "
                                     "those; more are answered 503 at once rather than queued without bound")
    max_texts: int = Field(default=64, ge=1, description="texts (or pairs) one HTTP request may carry")
    max_chars: int = Field(default=2000, ge=1, description="longest text accepted, in characters")
    seq_len: int | None = Field(default=None, ge=1, description="tokenizer truncation length; default "
                                "task.max_length")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    ray_address: str | None = Field(default=None, description="None: start a local Ray; 'auto' or "
                                    "'ray://host:10001': deploy on that cluster (its nodes need tinykd and the run "
                                    "directory)")
    throughput_optimized: bool = Field(default=False, description="RAY_SERVE_THROUGHPUT_OPTIMIZED=1 for a Ray this "
                                       "stage starts (docs/results.md has the measurement)")
    haproxy: bool = Field(default=True, description="RAY_SERVE_ENABLE_HA_PROXY=1: HAProxy as the HTTP front end, "
                          "for a Ray this stage starts; measured better here (docs/results.md): p50 4.4 vs 13.9 ms "
                          "unloaded, p99 26 vs 306 ms at 100 qps")
    spin_wait: bool = Field(default=False, description="let ONNX Runtime's intra-op threads spin between model calls "
                            "(its default, and the bench's); off, they sleep and leave the cores to the front end: "
                            "BOW over HTTP held p99 <= 20 ms at 75 qps instead of under 12.5 (docs/results.md)")
    duration_s: float | None = Field(default=None, gt=0, description="serve this long, then shut down; default: "
                                     "until Ctrl-C")

    @model_validator(mode="after")
    def _ongoing_fills_a_batch(self) -> ServeConfig:
        if self.max_ongoing_requests < self.max_batch_size:
            raise ValueError(f"max_ongoing_requests {self.max_ongoing_requests} is below max_batch_size "
                             f"{self.max_batch_size}: a replica could never fill a batch")
        return self


class LoadTarget(Section):
    model: str
    backend: Backend
    start_qps: float | None = Field(default=None, gt=0, description="where this target's search starts; default "
                                    "load.start_qps")
    p99_ms: list[float] | None = Field(default=None, min_length=1, description="this target's p99 bounds; default "
                                       "load.p99_ms (a slow teacher can be judged at a looser bound as well)")


class LoadConfig(Section):
    """MLPerf LoadGen's Server scenario against each target: Poisson arrivals at an offered QPS, latency from each
    query's scheduled send time; the highest offered QPS whose run is VALID at each p99 bound."""

    targets: list[LoadTarget] | None = Field(default=None, min_length=1, description="model × backend pairs; "
                                             "default: serve's model and backend")
    systems: list[Literal["inprocess", "http"]] = Field(
        default_factory=lambda: ["inprocess", "http"], min_length=1,
        description="inprocess: the model behind the same batching policy in the LoadGen process, no HTTP; http: "
        "the `serve` application over loopback")
    p99_ms: list[float] | None = Field(default=None, min_length=1, description="p99 bounds; default [budget.p99_ms]")
    offered_qps: list[float] | None = Field(default=None, min_length=1, description="offered loads to run at each "
                                            "bound; default: a search from start_qps (doubling to the first "
                                            "INVALID run, then `search_steps` bisections)")
    ceiling: bool = Field(default=False, description="also load a server with no model (`no-model`: an answer at "
                          "once, no tokenizer) on each system: the highest QPS the serving path itself sustains here")
    start_qps: float = Field(default=50.0, gt=0)
    search_steps: int = Field(default=3, ge=0)
    min_duration_s: float = Field(default=60.0, gt=0, description="each run lasts at least this long (MLPerf: 600)")
    min_query_count: int = Field(default=1024, ge=1)
    max_duration_s: float = Field(default=120.0, gt=0, description="LoadGen stops a run here even if queries remain")
    rows: int = Field(default=512, ge=1, description="test rows the queries draw from")
    seed: int = 0

    @model_validator(mode="after")
    def _durations_ordered(self) -> LoadConfig:
        if self.max_duration_s < self.min_duration_s:
            raise ValueError(f"max_duration_s {self.max_duration_s} is below min_duration_s {self.min_duration_s}")
        return self
