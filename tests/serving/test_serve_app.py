"""The Ray Serve application of `serve` on a real local Ray: answers, 4xx reasons, dynamic batching under concurrent
load, two replicas sharing the requests, backpressure (503 at once past the queue bound, every accepted text
answered: count in = count out), and LoadGen's Server scenario over HTTP.

Ray's start-up and replicas that import torch take tens of seconds on 2 cores, so the module deploys one
application and every test uses it: 2 replicas, batches that wait 0.1 s to fill, 8 requests in flight per replica
and 16 queued at the proxy."""

from __future__ import annotations

import json
import logging
import os
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.serving.tiny_run import served_run
from tinykd.config import ServeConfig
from tinykd.serving.deployment import MIN_DRAIN_ENV, running_app
from tinykd.serving.predictor import ServedModel

pytestmark = pytest.mark.slow

SPEC = ServeConfig(replicas=2, threads=1, max_batch_size=8, batch_wait_timeout_s=0.1, max_ongoing_requests=8,
                   max_queued_requests=16, max_texts=4, max_chars=50, port=8431)


@pytest.fixture(scope="module")
def app(tmp_path_factory, tiny_teacher_module, sentiment_files_module):
    ray = pytest.importorskip("ray", reason="the serve extra is not installed (make serve-env)")
    pytest.importorskip("ray.serve", reason="the serve extra is not installed (make serve-env)")
    _, paths = served_run(tmp_path_factory.mktemp("served"), tiny_teacher_module, sentiment_files_module)
    served = ServedModel(paths.root.resolve(), "teacher", "torch-fp32", pair=False, seq_len=32)
    # What the load stage sets for a Ray it starts: HAProxy in front (`serve.haproxy`, default true), and no 30 s
    # drain of the replicas at teardown (nothing outside routes to them).
    flags = {"RAY_SERVE_ENABLE_HA_PROXY": "1", MIN_DRAIN_ENV: "0"}
    before = {name: os.environ.get(name) for name in flags}
    os.environ.update(flags)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    try:
        with running_app(served, SPEC) as running:
            yield running
    finally:
        ray.shutdown()
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="module")
def tiny_teacher_module(tmp_path_factory):
    from tests.conftest import sentiment_rows
    from tests.tiny_models import save_tiny_teacher

    return save_tiny_teacher(tmp_path_factory.mktemp("teacher"), [text for _, text in sentiment_rows(360)])


@pytest.fixture(scope="module")
def sentiment_files_module(tmp_path_factory):
    from tests.conftest import sentiment_rows, write_tsv

    folder, rows = tmp_path_factory.mktemp("data"), sentiment_rows(360)
    return {"train": write_tsv(folder / "train.tsv", rows[:240]), "dev": write_tsv(folder / "dev.tsv", rows[240:300]),
            "test": write_tsv(folder / "test.tsv", rows[300:])}


def _post(url: str, body, raw: bytes | None = None) -> tuple[int, dict]:
    data = raw if raw is not None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        text = error.read().decode()
        try:
            return error.code, json.loads(text)
        except json.JSONDecodeError:
            return error.code, {"text": text}


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _stats_of_both_replicas(url: str) -> dict[str, dict]:
    """GET /stats until each of the two replicas has answered once (the router picks one per request)."""
    seen = {}
    for _ in range(100):
        status, stats = _get(url + "stats")
        assert status == 200
        seen[stats["replica"]] = stats
        if len(seen) == 2:
            return seen
    raise AssertionError(f"only replicas {list(seen)} answered /stats")


def test_answers_and_one_line_4xx_reasons(app):
    status, health = _get(app.url + "health")
    assert status == 200 and health["status"] == "ready" and health["model"] == "teacher"
    status, one = _post(app.url, {"text": "这家酒店很好"})
    assert status == 200 and one["label"] in one["probabilities"]
    assert sum(one["probabilities"].values()) == pytest.approx(1, abs=1e-5)
    status, many = _post(app.url, {"texts": ["很好", "很差", "一般"]})
    assert status == 200 and len(many["predictions"]) == 3

    assert _post(app.url, None, raw=b"{not json") == (400, {"error": "body: not JSON (Expecting property name "
                                                                      "enclosed in double quotes at character 1)"})
    assert _post(app.url, {"text": ""}) == (400, {"error": "text: empty text"})
    assert _post(app.url, {"text": "好" * 51}) == (400, {"error": "text: 51 characters, more than the limit 50"})
    assert _post(app.url, {"texts": ["a"] * 5}) == (400, {"error": "texts: 5 items, more than the limit 4 per request"})
    assert _post(app.url, {"text_a": "a", "text_b": "b"})[0] == 400  # a pair body to a single-text model
    assert _get(app.url + "nothing-here")[0] == 404


def test_concurrent_requests_share_model_calls_on_both_replicas(app):
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda i: _post(app.url, {"text": f"第{i}次入住，很好"}), range(12)))
    assert all(status == 200 for status, _ in answers)
    assert max(answer["batch_size"] for _, answer in answers) > 1
    assert len({answer["replica"] for _, answer in answers}) == 2


def test_past_the_queue_bound_requests_get_503_and_no_accepted_text_is_lost(app):
    before = _stats_of_both_replicas(app.url)
    with ThreadPoolExecutor(150) as pool:
        answers = list(pool.map(lambda i: _post(app.url, {"texts": [f"第{i}条", "很好"]}), range(150)))
    statuses = [status for status, _ in answers]
    accepted = [answer for status, answer in answers if status == 200]
    assert set(statuses) == {200, 503}
    assert all(len(answer["predictions"]) == 2 for answer in accepted)
    after = _stats_of_both_replicas(app.url)
    # The bound held: no replica ever held more than its max_ongoing_requests, whatever the burst (how many of the
    # 150 get in depends on how fast slots free up while the burst is sent, so that count is not pinned).
    assert all(0 < after[r]["peak_ongoing"] <= SPEC.max_ongoing_requests for r in after)
    gained = {key: sum(after[r].get(key, 0) - before[r].get(key, 0) for r in after) for key in ("texts_in", "texts_out")}
    assert gained == {"texts_in": 2 * len(accepted), "texts_out": 2 * len(accepted)}


def test_loadgen_server_scenario_over_http(app):
    from tinykd.serving.load_systems import HttpSystem
    from tinykd.serving.loadgen_run import LoadPoint, run_point

    pytest.importorskip("mlperf_loadgen", reason="the serve extra is not installed (make serve-env)")
    system = HttpSystem(app.url, pair=False)
    try:
        items = [(f"第{i}条评论，很好", None) for i in range(50)]
        # 50 qps: well inside what 2 replicas holding batches for 0.1 s take (about 160 qps), so no 503
        outcome = run_point(system, items, LoadPoint(50, 5000.0, 1.0, 500, 30.0, seed=0))
    finally:
        system.close()
    assert outcome.valid and outcome.queries >= 500 and outcome.failed == 0 and dict(system.statuses) == {200: outcome.queries}
    assert outcome.p50_ms <= outcome.p99_ms
    assert max(system.batch_sizes()) > 1  # arrivals within 0.1 s of each other share a batch
