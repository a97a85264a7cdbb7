"""The dynamic batching policy of `@serve.batch`, in a thread: what the in-process load system puts in front of a
`Predictor` so it batches like a replica does, without Ray or HTTP.

Policy (Ray Serve's, `max_concurrent_batches=1`): a batch starts when its first item arrives, takes every item that
arrives within `wait_s` of that one, and runs as soon as it holds `max_batch_size` items or `wait_s` has passed;
one batch runs at a time, and items that arrive meanwhile wait for the next.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import Counter
from typing import Any, Callable, Sequence

_STOP = object()


class DynamicBatcher:
    """`submit(item, tag)` from any thread; `done(tags, results)` is called from the batching thread per batch."""

    def __init__(self, run_batch: Callable[[list], Sequence], done: Callable[[list, Sequence], None],
                 max_batch_size: int, wait_s: float):
        self._run_batch, self._done = run_batch, done
        self.max_batch_size, self.wait_s = max_batch_size, wait_s
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self.batch_sizes: Counter = Counter()  # batch size -> batches run
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name="dynamic-batcher", daemon=True)
        self._thread.start()

    def submit(self, item: Any, tag: Any) -> None:
        self._queue.put((item, tag))

    def close(self) -> None:
        """Finish what was submitted, then stop the thread."""
        self._queue.put(_STOP)
        self._thread.join()

    def _loop(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                return
            batch, deadline = [first], time.perf_counter() + self.wait_s
            while len(batch) < self.max_batch_size:
                left = deadline - time.perf_counter()
                try:
                    entry = self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if entry is _STOP:
                    stopping = True
                    break
                batch.append(entry)
            items, tags = [item for item, _ in batch], [tag for _, tag in batch]
            try:
                results = self._run_batch(items)
            except BaseException as error:  # noqa: BLE001  kept for the caller: the load run reports it
                self.error = error
                results = [None] * len(items)
            self.batch_sizes[len(items)] += 1
            self._done(tags, results)
