"""The Ray Serve application of `serve`: one deployment, `TextClassifier`, with `@serve.batch` dynamic batching.

Routes (HTTP, under the application's route prefix `/`):
- `POST /` a JSON body (see `request_body`): 200 with `{"label", "probabilities"}` for one text or pair, or
  `{"predictions": [...]}` for a list; each answer also names the replica and the batch size its texts ran in.
  400 with `{"error": one line}` for a body the client must fix. When a replica's `max_ongoing_requests` are taken
  and `max_queued_requests` wait at the proxy, Ray Serve answers 503 at once (backpressure), not after a queue.
- `GET /health` 200 `{"status": "ready", ...}` once the model is loaded (Ray's own `/-/healthz` says the proxy is up);
- `GET /stats` this replica's counts: requests and texts in, texts answered, batches by size.

Each text of a request is its own `@serve.batch` item, so one request of 8 texts and 8 requests of one text batch
alike. A replica reserves `threads` CPUs from Ray and runs the model with that many intra-op threads.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from tinykd.config import ServeConfig
from tinykd.serving.predictor import ServedModel, load_predictor
from tinykd.serving.request_body import BadRequest, Limits, parse_request

APP_NAME = "tinykd"


def build_app(served: ServedModel, spec: ServeConfig):
    """The bound Ray Serve application (deployment options from `serve`)."""
    from ray import serve
    from starlette.requests import Request
    from starlette.responses import JSONResponse

    class TextClassifier:
        def __init__(self, served: ServedModel, spec: ServeConfig):
            self.predictor = load_predictor(served, spec)
            self.limits = Limits(spec.max_texts, spec.max_chars)
            self.classify.set_max_batch_size(spec.max_batch_size)
            self.classify.set_batch_wait_timeout_s(spec.batch_wait_timeout_s)
            self.replica = serve.get_replica_context().replica_id.unique_id
            self.counts: Counter = Counter()
            self.ongoing = 0
            self.batch_sizes: Counter = Counter()

        @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.002)  # both reset from the config in __init__
        async def classify(self, items: list[tuple[str, str | None]]) -> list[dict]:
            predictions = self.predictor(items)  # (B,) one model call for the batch
            self.batch_sizes[len(items)] += 1
            return [p.record() | {"batch_size": len(items)} for p in predictions]

        async def __call__(self, request: Request) -> JSONResponse:
            if request.method == "GET":
                return self._get(request.url.path.rstrip("/"))
            if request.method != "POST":
                return JSONResponse({"error": f"method {request.method}: POST a JSON body"}, status_code=405)
            self.counts["requests"] += 1
            try:
                body = json.loads(await request.body())
                parsed = parse_request(body, self.predictor.pair, self.limits)
            except json.JSONDecodeError as error:
                self.counts["rejected"] += 1
                return JSONResponse({"error": f"body: not JSON ({error.msg} at character {error.pos})"}, status_code=400)
            except BadRequest as error:
                self.counts["rejected"] += 1
                return JSONResponse({"error": str(error)}, status_code=400)
            self.counts["texts_in"] += len(parsed.items)
            self.ongoing += 1  # requests this replica holds now; Ray admits at most max_ongoing_requests
            self.counts["peak_ongoing"] = max(self.counts["peak_ongoing"], self.ongoing)
            try:
                answers = await asyncio.gather(*(self.classify(item) for item in parsed.items))
            finally:
                self.ongoing -= 1
            self.counts["texts_out"] += len(answers)
            served = {"model": self.predictor.model, "backend": self.predictor.backend, "replica": self.replica}
            if parsed.single:
                return JSONResponse(answers[0] | served)
            return JSONResponse({"predictions": answers} | served)

        def _get(self, path: str) -> JSONResponse:
            if path.endswith("/health"):
                return JSONResponse({"status": "ready", "model": self.predictor.model,
                                     "backend": self.predictor.backend, "replica": self.replica})
            if path.endswith("/stats"):
                return JSONResponse({"replica": self.replica, **self.counts,
                                     "batch_sizes": {str(k): v for k, v in sorted(self.batch_sizes.items())}})
            return JSONResponse({"error": f"GET {path or '/'}: GET /health or /stats, or POST a JSON body"},
                                status_code=404)

    deployment = serve.deployment(
        TextClassifier, name="TextClassifier", num_replicas=spec.replicas,
        max_ongoing_requests=spec.max_ongoing_requests, max_queued_requests=spec.max_queued_requests,
        ray_actor_options={"num_cpus": spec.threads},
    )
    return deployment.bind(served, spec)


MIN_DRAIN_ENV = "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S"


@dataclass(frozen=True)
class RunningApp:
    url: str  # http://host:port/


@contextmanager
def running_app(served: ServedModel, spec: ServeConfig, ready_timeout_s: float = 120.0,
                drain_s: float | None = None) -> Iterator[RunningApp]:
    """Deploy the application (on a local Ray started here, or on the cluster at `serve.ray_address`), wait until
    every replica has loaded the model, and tear it down on exit: Ray and Serve are stopped when started here; in a
    caller's Ray session only the application is deleted (and a Serve instance already running there keeps the
    host and port it was started with).

    Behind HAProxy a stopping replica keeps draining for Ray's minimum period (30 s) so that an outside load
    balancer can deregister it; `drain_s` shortens that for a Ray started here, where nothing outside routes to the
    replicas (the load stage's own traffic has ended when it tears the application down)."""
    import ray
    from ray import serve

    started_here = not ray.is_initialized()
    if started_here:
        flags = {"RAY_SERVE_THROUGHPUT_OPTIMIZED": spec.throughput_optimized, "RAY_SERVE_ENABLE_HA_PROXY": spec.haproxy}
        for name, on in flags.items():
            if on:
                os.environ[name] = "1"
        if drain_s is not None:
            os.environ[MIN_DRAIN_ENV] = str(drain_s)  # read by the controller and replicas Ray starts below
        if spec.ray_address is None:
            cpus = max(os.cpu_count() or 1, spec.replicas * spec.threads)  # a replica reserves `threads` CPUs
            ray.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=False,
                     logging_level=logging.WARNING)
        else:
            ray.init(address=spec.ray_address, log_to_driver=False, logging_level=logging.WARNING)
    try:
        serve.start(http_options={"host": spec.host, "port": spec.port})
        serve.run(build_app(served, spec), name=APP_NAME, route_prefix="/")  # returns once the replicas run
        app = RunningApp(f"http://{spec.host}:{spec.port}/")
        _wait_ready(app.url + "health", spec.replicas, ready_timeout_s)
        yield app
    finally:
        if started_here:
            try:
                serve.shutdown()
            finally:
                ray.shutdown()
        else:  # a caller's Ray (and its Serve instance, proxy and port) stays up for its next application
            serve.delete(APP_NAME)


def _wait_ready(url: str, replicas: int, timeout_s: float) -> None:
    """Until GET /health through the ingress has been answered by every replica. `serve.run` returns once the
    replicas run, but the ingress learns of them a moment later: behind HAProxy each replica is a server added
    by a config reload, and a load started before the last reload would hit one replica only."""
    import json
    import urllib.error
    import urllib.request

    deadline = time.perf_counter() + timeout_s
    answered: set[str] = set()
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    answered.add(json.load(response)["replica"])
                    if len(answered) >= replicas:
                        return
        except (urllib.error.URLError, ConnectionError):
            pass
        if time.perf_counter() > deadline:
            raise RuntimeError(f"{url}: {len(answered)} of {replicas} replicas answered within {timeout_s:.0f} s"
                               f" ({sorted(answered)})")
        time.sleep(0.1)
