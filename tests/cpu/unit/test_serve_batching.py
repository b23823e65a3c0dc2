"""Continuous batching (the retriever replica's batcher): a batch is formed when the worker frees up, from what
queued meanwhile, up to the cap; every caller gets its own result; a failing batch fails only its callers; a
lone request waits for company only while a window is set. And the fading peak that sizes the cap."""

from __future__ import annotations

import asyncio
import threading

import pytest

from codesense_ray.app.serve import batching
from codesense_ray.app.serve.batching import ContinuousBatcher, RecentPeak


class Worker:
    """Records each batch; the first batch blocks until released (a model busy with the previous batch)."""

    def __init__(self, block_first: bool = False) -> None:
        self.batches: list[list] = []
        self.release = threading.Event()
        if not block_first:
            self.release.set()

    def __call__(self, items: list) -> list:
        self.batches.append(list(items))
        if len(self.batches) == 1:
            assert self.release.wait(10)
        if any(item == "boom" for item in items):
            raise RuntimeError("model failed")
        return [f"result of {item}" for item in items]


async def _until(predicate, timeout_s: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.001)


def test_requests_that_queue_while_the_worker_is_busy_form_the_next_batch_up_to_the_cap():
    """While batch 1 runs, five requests queue; with a cap of 3 they are served as [3, 2] — never one per timer
    tick — and each caller receives the result of its own item."""
    worker = Worker(block_first=True)
    batcher = ContinuousBatcher(worker, max_batch_size=3)

    async def main():
        first = asyncio.create_task(batcher.submit("a"))
        await _until(lambda: worker.batches)
        rest = [asyncio.create_task(batcher.submit(x)) for x in "bcdef"]
        await _until(lambda: len(batcher) == 5)
        worker.release.set()
        return await first, await asyncio.gather(*rest)

    first, rest = asyncio.run(main())
    assert first == "result of a" and rest == [f"result of {x}" for x in "bcdef"]
    assert worker.batches == [["a"], ["b", "c", "d"], ["e", "f"]]


def test_a_lone_request_does_not_wait_without_a_window_and_waits_for_company_with_one():
    """Window 0: a request is served at once, alone, though another follows 50 ms later. With a window, requests
    arriving within it share one batch, which closes as soon as it is full (not at the window's end)."""
    worker = Worker()
    batcher = ContinuousBatcher(worker, max_batch_size=3)

    async def staggered(items):
        calls = []
        for item in items:
            calls.append(asyncio.create_task(batcher.submit(item)))
            await asyncio.sleep(0.05)
        return await asyncio.gather(*calls)

    async def main():
        alone = await staggered(["p", "q"])
        batcher.configure(max_batch_size=3, wait_s=30.0)
        loop = asyncio.get_running_loop()
        started = loop.time()
        together = await staggered(["x", "y", "z"])
        return alone, together, loop.time() - started

    alone, together, seconds = asyncio.run(main())
    assert alone == ["result of p", "result of q"] and together == [f"result of {x}" for x in "xyz"]
    assert worker.batches == [["p"], ["q"], ["x", "y", "z"]]
    assert seconds < 10  # closed when full, far before the 30 s window


def test_a_failing_batch_fails_its_callers_only_and_the_batcher_keeps_serving():
    worker = Worker(block_first=True)
    batcher = ContinuousBatcher(worker, max_batch_size=2)

    async def main():
        first = asyncio.create_task(batcher.submit("a"))
        await _until(lambda: worker.batches)
        doomed = [asyncio.create_task(batcher.submit(x)) for x in ("boom", "b")]
        later = asyncio.create_task(batcher.submit("c"))
        await _until(lambda: len(batcher) == 3)
        worker.release.set()
        outcomes = await asyncio.gather(*doomed, return_exceptions=True)
        return await first, outcomes, await later

    first, outcomes, later = asyncio.run(main())
    assert first == "result of a" and later == "result of c"
    assert all(isinstance(o, RuntimeError) and "model failed" in str(o) for o in outcomes)
    assert worker.batches == [["a"], ["boom", "b"], ["c"]]


def test_a_cancelled_request_leaves_the_queue_without_reaching_the_model():
    worker = Worker(block_first=True)
    batcher = ContinuousBatcher(worker, max_batch_size=4)

    async def main():
        first = asyncio.create_task(batcher.submit("a"))
        await _until(lambda: worker.batches)
        gone = asyncio.create_task(batcher.submit("gone"))
        kept = asyncio.create_task(batcher.submit("kept"))
        await _until(lambda: len(batcher) == 2)
        gone.cancel()
        worker.release.set()
        return await first, await kept

    assert asyncio.run(main()) == ("result of a", "result of kept")
    assert worker.batches == [["a"], ["kept"]]


def test_recent_peak_keeps_the_maximum_and_fades_with_its_time_constant(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(batching.time, "monotonic", lambda: now[0])
    peak = RecentPeak(fade_s=1.0)
    peak.observe(8)
    peak.observe(3)  # a lower sample does not lower the peak
    assert peak.current() == pytest.approx(8)
    now[0] += 1.0
    assert peak.current() == pytest.approx(8 / 2.718281828, rel=1e-6)
    peak.observe(5)
    assert peak.current() == pytest.approx(5)
    now[0] += 10
    assert peak.current() < 0.001
