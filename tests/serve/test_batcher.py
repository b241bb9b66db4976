import asyncio
import threading
import time

import pytest

from motionmillion.serve.batcher import Batcher, QueueFullError


class Recorder:
    """A stand-in for the pipeline: records batch sizes, answers each item with its upper-case text."""

    def __init__(self, seconds: float = 0.05, gate: threading.Event | None = None):
        self.seconds = seconds
        self.gate = gate
        self.batches: list[list[str]] = []

    def __call__(self, items):
        if self.gate is not None:
            self.gate.wait(10)
        self.batches.append(list(items))
        if any(item == "bad" for item in items):
            raise ValueError("item 'bad' is not allowed")
        time.sleep(self.seconds)
        return [item.upper() for item in items]


def run(coro):
    return asyncio.run(coro)


async def _with_batcher(generate, body, **kwargs):
    batcher = Batcher(generate, **kwargs)
    await batcher.start()
    try:
        return await body(batcher)
    finally:
        await batcher.stop()


def test_concurrent_requests_share_one_call_and_get_their_own_results():
    recorder = Recorder(seconds=0.1)

    async def body(batcher):
        first = batcher.submit(["a"])  # an idle server starts at once
        await asyncio.sleep(0.02)
        rest = [batcher.submit([f"r{i}", f"s{i}"]) for i in range(10)]  # queue up while "a" generates
        return await first, await asyncio.gather(*rest)

    first, rest = run(_with_batcher(recorder, body, max_batch=32, max_wait_s=0.01))
    assert first == ["A"]
    assert rest == [[f"R{i}", f"S{i}"] for i in range(10)]
    assert [len(b) for b in recorder.batches] == [1, 20]


def test_a_lone_request_does_not_wait_for_company():
    recorder = Recorder(seconds=0.0)

    async def body(batcher):
        start = time.perf_counter()
        result = await batcher.submit(["alone"])
        return result, time.perf_counter() - start

    result, took = run(_with_batcher(recorder, body, max_wait_s=1.0))
    assert result == ["ALONE"] and took < 0.5  # max_wait is 1 s: it did not wait


def test_a_trickle_waits_for_company_up_to_max_wait():
    recorder = Recorder(seconds=0.03)

    async def body(batcher):
        futures = [batcher.submit(["a"])]
        for item in ("b", "c"):
            await asyncio.sleep(0.02)  # arrivals 20 ms apart: company is likely
            futures.append(batcher.submit([item]))
        return await asyncio.gather(*futures)

    assert run(_with_batcher(recorder, body, max_wait_s=0.2)) == [["A"], ["B"], ["C"]]
    assert [len(b) for b in recorder.batches] == [1, 2]  # b waited for c instead of running alone


def test_batches_never_exceed_max_batch_and_keep_requests_whole():
    recorder = Recorder(seconds=0.01, gate=threading.Event())

    async def body(batcher):
        futures = [batcher.submit([f"{i}a", f"{i}b", f"{i}c"]) for i in range(6)]
        recorder.gate.set()
        return await asyncio.gather(*futures)

    results = run(_with_batcher(recorder, body, max_batch=7))
    assert results == [[f"{i}A", f"{i}B", f"{i}C"] for i in range(6)]
    assert all(len(b) <= 7 for b in recorder.batches) and sum(len(b) for b in recorder.batches) == 18
    with pytest.raises(ValueError, match="1 to 7 items"):
        run(_with_batcher(recorder, lambda b: _submit_now(b, ["x"] * 8), max_batch=7))


async def _submit_now(batcher, items):
    return batcher.submit(items)


def test_a_full_queue_refuses_and_a_bad_request_fails_alone():
    gate = threading.Event()
    recorder = Recorder(seconds=0.0, gate=gate)

    async def body(batcher):
        running = batcher.submit(["first"])
        await asyncio.sleep(0.05)  # "first" is on the worker, blocked on the gate
        queued = [batcher.submit(["ok1"]), batcher.submit(["bad"])]
        with pytest.raises(QueueFullError, match="2 requests are queued"):
            batcher.submit(["one too many"])
        gate.set()
        results = await asyncio.gather(running, *queued, return_exceptions=True)
        return results, await batcher.submit(["ok2"])

    (first, ok1, bad), ok2 = run(_with_batcher(recorder, body, max_queue=2))
    assert first == ["FIRST"] and ok1 == ["OK1"] and ok2 == ["OK2"]
    assert isinstance(bad, ValueError) and "bad" in str(bad)


def test_a_request_that_gave_up_is_not_generated():
    recorder = Recorder(seconds=0.05)

    async def body(batcher):
        busy = batcher.submit(["busy"])
        await asyncio.sleep(0.01)
        abandoned = batcher.submit(["abandoned"])
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(abandoned, 0.01)
        await busy
        return await batcher.submit(["next"])

    assert run(_with_batcher(recorder, body)) == ["NEXT"]
    assert ["abandoned"] not in recorder.batches


def test_two_workers_generate_two_batches_at_once_and_a_lone_request_still_starts_at_once():
    in_flight, most = [0], [0]
    lock = threading.Lock()

    def generate(items):
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
        time.sleep(0.1)
        with lock:
            in_flight[0] -= 1
        return [item.upper() for item in items]

    async def body(batcher):
        first = batcher.submit(["a"])
        await asyncio.sleep(0.01)
        second = [batcher.submit([f"b{i}"]) for i in range(4)]  # while "a" runs: a second worker takes them
        results = await first, await asyncio.gather(*second)
        await asyncio.sleep(0.05)
        start = time.perf_counter()
        await batcher.submit(["alone"])  # nothing running: no waiting for company
        return results, time.perf_counter() - start

    (first, second), alone_seconds = run(_with_batcher(generate, body, max_batch=8, max_wait_s=0.01, workers=2))
    assert first == ["A"] and second == [[f"B{i}"] for i in range(4)]
    assert most[0] == 2  # the two batches overlapped
    assert alone_seconds < 0.1 + 0.04
