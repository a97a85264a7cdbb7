"""The two systems `load` drives: the model in-process behind the serving batch policy, and the served application
over HTTP. Both answer one query per test row and report each answer to LoadGen as it arrives."""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter
from typing import Callable

from tinykd.serving.batching import DynamicBatcher
from tinykd.serving.loadgen_run import Item
from tinykd.serving.predictor import NoModel, Predictor

Completion = Callable[[list[int], bool], None]


class InProcessSystem:
    """A `Predictor` behind `DynamicBatcher` (the `@serve.batch` policy) in the LoadGen process: no Ray, no HTTP."""

    name = "inprocess"

    def __init__(self, predictor: Predictor | NoModel, max_batch_size: int, wait_s: float):
        self._complete: Completion = lambda ids, ok: None
        self._batcher = DynamicBatcher(predictor, self._done, max_batch_size, wait_s)

    def set_completion(self, complete: Completion) -> None:
        self._complete = complete

    def issue(self, query_id: int, item: Item) -> None:
        self._batcher.submit(item, query_id)

    def _done(self, query_ids: list, results) -> None:
        self._complete(list(query_ids), all(r is not None for r in results))

    def batch_sizes(self) -> dict[int, int]:
        return dict(self._batcher.batch_sizes)

    def close(self) -> None:
        self._batcher.close()
        if self._batcher.error is not None:
            raise self._batcher.error


class HttpSystem:
    """POSTs each query as `{"text": ...}` (or `text_a`/`text_b`) to the served application over a pool of keep-alive
    connections (aiohttp on an event loop in its own thread), so issuing never waits for an answer. A status other
    than 200 is a failed query; the batch size each answer reports is counted."""

    name = "http"

    def __init__(self, url: str, pair: bool, connections: int = 512):
        import aiohttp

        self.url, self.pair = url, pair
        self._complete: Completion = lambda ids, ok: None
        self._sizes: Counter = Counter()  # batch size -> answers that ran in a batch of that size
        self.statuses: Counter = Counter()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="http-load", daemon=True)
        self._thread.start()

        async def session():
            return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections),
                                         timeout=aiohttp.ClientTimeout(total=60))

        self._session = asyncio.run_coroutine_threadsafe(session(), self._loop).result()

    def set_completion(self, complete: Completion) -> None:
        self._complete = complete

    def issue(self, query_id: int, item: Item) -> None:
        body = {"text_a": item[0], "text_b": item[1]} if self.pair else {"text": item[0]}
        asyncio.run_coroutine_threadsafe(self._post(query_id, json.dumps(body, ensure_ascii=False)), self._loop)

    async def _post(self, query_id: int, body: str) -> None:
        ok = False
        try:
            async with self._session.post(self.url, data=body.encode(),
                                          headers={"content-type": "application/json"}) as response:
                payload = await response.read()
                self.statuses[response.status] += 1
                if response.status == 200:
                    ok = True
                    self._sizes[int(json.loads(payload).get("batch_size", 0))] += 1
        except Exception:  # noqa: BLE001  a refused or reset connection is a failed query, not a crash of the run
            self.statuses["error"] += 1
        self._complete([query_id], ok)

    def batch_sizes(self) -> dict[int, int]:
        """Batch size -> batches, estimated from answers: n answers from batches of size s are n / s batches."""
        return {size: round(count / size) for size, count in self._sizes.items() if size}

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._session.close(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
