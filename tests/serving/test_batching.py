"""The in-process batch policy (`@serve.batch`'s): concurrent items share a call, a batch never passes its maximum,
a lone item waits no longer than the timeout, and every item is answered once, with its own result."""

from __future__ import annotations

import threading
import time

from tinykd.serving.batching import DynamicBatcher


def _collecting(run_batch, max_batch_size: int, wait_s: float):
    answers, lock = {}, threading.Lock()

    def done(tags, results):
        with lock:
            for tag, result in zip(tags, results):
                assert tag not in answers
                answers[tag] = result

    return DynamicBatcher(run_batch, done, max_batch_size, wait_s), answers


def test_concurrent_items_are_batched_up_to_the_maximum_and_each_answered_once():
    calls = []

    def run_batch(items):
        calls.append(len(items))
        time.sleep(0.01)  # while one batch runs, the next fills
        return [item * 10 for item in items]

    batcher, answers = _collecting(run_batch, max_batch_size=4, wait_s=0.05)
    for i in range(40):
        batcher.submit(i, tag=f"q{i}")
    batcher.close()
    assert answers == {f"q{i}": i * 10 for i in range(40)}
    assert max(calls) == 4 and sum(calls) == 40
    assert batcher.batch_sizes[4] >= 9  # all but the odd ends of the queue ran full
    assert sum(size * n for size, n in batcher.batch_sizes.items()) == 40


def test_a_lone_item_runs_after_the_wait_not_later():
    batcher, answers = _collecting(lambda items: items, max_batch_size=8, wait_s=0.05)
    started = time.perf_counter()
    batcher.submit("x", tag=1)
    while 1 not in answers:
        time.sleep(0.001)
    waited = time.perf_counter() - started
    batcher.close()
    assert 0.04 <= waited < 5  # waited for company, then ran alone (not a timing claim: any sane machine)
    assert dict(batcher.batch_sizes) == {1: 1}


def test_a_failing_batch_answers_its_items_as_failed_and_keeps_the_error():
    def run_batch(items):
        raise RuntimeError("model failed")

    batcher, answers = _collecting(run_batch, max_batch_size=2, wait_s=0.0)
    batcher.submit("a", tag=1)
    batcher.close()
    assert answers == {1: None}
    assert isinstance(batcher.error, RuntimeError)
