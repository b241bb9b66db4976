"""Dynamic batching: concurrent HTTP requests share one batched, KV-cached sampler call.

Requests wait in an asyncio queue. One collector task takes the oldest request, adds whatever else is
queued (up to ``max_batch`` motions) and hands the batch to a single worker thread that calls the
pipeline. While the worker generates, new requests queue up, so under load every call is a full batch
without anybody waiting on a timer. The timer only matters for a trickle: a request that arrives
within ``max_wait`` of the previous one suggests company is coming, so its batch waits up to
``max_wait`` (counted from its arrival) for more; a request to an idle server starts at once, so a lone
client is not slowed.

The batcher knows nothing about motions: it is given ``generate(items) -> results`` (one result per
item, in order) and returns each job its own slice.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


class QueueFullError(RuntimeError):
    """The queue holds ``max_queue`` requests already (the server answers 429)."""


@dataclass
class _Job:
    items: list[Any]
    future: asyncio.Future
    arrived: float
    expects_company: bool


@dataclass
class BatchStats:
    generating_seconds: float = 0.0  # time the worker spent in generate(): busy / wall = how fed it is
    sizes: Counter = field(default_factory=Counter)  # batch size -> how many batches had it

    @property
    def batches(self) -> int:
        return self.sizes.total()

    @property
    def items(self) -> int:
        return sum(size * count for size, count in self.sizes.items())

    @property
    def largest_batch(self) -> int:
        return max(self.sizes, default=0)


class Batcher:
    def __init__(self, generate: Callable[[Sequence[Any]], Sequence[Any]], max_batch: int = 32,
                 max_wait_s: float = 0.010, max_queue: int = 256):  # fmt: skip
        self._generate = generate
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.max_queue = max_queue
        self.stats = BatchStats()
        self._queue: asyncio.Queue[_Job] | None = None
        self._task: asyncio.Task | None = None
        # One thread: the pipeline is not re-entrant, and one batched call uses the cores best.
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="generate")
        self._last_arrival = float("-inf")
        self._carried: _Job | None = None

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self._queue = asyncio.Queue(maxsize=self.max_queue)
        self._task = asyncio.create_task(self._collect_forever(), name="batch-collector")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._executor.shutdown(wait=True, cancel_futures=True)

    def run_in_worker(self, fn: Callable, *args) -> asyncio.Future:
        """Run ``fn`` on the generation thread (e.g. a streaming generator), in turn with the batches."""
        return asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    @property
    def queued(self) -> int:
        return self._queue.qsize() if self._queue is not None else 0

    # ------------------------------------------------------------------ submitting
    def submit(self, items: Sequence[Any]) -> asyncio.Future:
        """Queue one request's items; the future resolves to their results. Raises QueueFullError."""
        if self._queue is None:
            raise RuntimeError("Batcher.start() was not awaited")
        if not 1 <= len(items) <= self.max_batch:
            raise ValueError(f"a request must hold 1 to {self.max_batch} items, got {len(items)}")
        loop = asyncio.get_running_loop()
        now = loop.time()
        job = _Job(list(items), loop.create_future(), now, expects_company=now - self._last_arrival < self.max_wait_s)
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            raise QueueFullError(f"the server is busy: {self.max_queue} requests are queued already") from None
        self._last_arrival = now
        return job.future

    # ------------------------------------------------------------------ collecting and running
    async def _next_job(self, timeout: float | None) -> _Job | None:
        if self._carried is not None:
            job, self._carried = self._carried, None
            return job
        assert self._queue is not None
        if timeout is None:
            return await self._queue.get()
        try:
            return self._queue.get_nowait()
        except asyncio.QueueEmpty:
            if timeout <= 0:
                return None
        try:
            return await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            return None

    async def _next_batch(self) -> list[_Job]:
        loop = asyncio.get_running_loop()
        batch: list[_Job] = []
        size = 0
        deadline = 0.0
        while size < self.max_batch:
            job = await self._next_job(None if not batch else deadline - loop.time())
            if job is None:
                break
            if job.future.done():  # timed out or cancelled while it queued
                continue
            if size + len(job.items) > self.max_batch:
                self._carried = job  # starts the next batch
                break
            if not batch:
                deadline = job.arrived + (self.max_wait_s if job.expects_company else 0.0)
            batch.append(job)
            size += len(job.items)
        return batch

    async def _collect_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._next_batch()
            items = [item for job in batch for item in job.items]
            self.stats.sizes[len(items)] += 1
            started = time.perf_counter()
            try:
                results = await loop.run_in_executor(self._executor, self._generate, items)
                self.stats.generating_seconds += time.perf_counter() - started
                self._deliver(batch, results)
            except ValueError:
                # One bad request must not fail its neighbours: run each alone to find it.
                for job in batch:
                    try:
                        self._deliver([job], await loop.run_in_executor(self._executor, self._generate, job.items))
                    except Exception as err:  # noqa: BLE001 - handed to the request that caused it
                        _set(job.future, error=err)
            except Exception as err:  # noqa: BLE001 - every waiting request learns of the failure
                log.exception("generation failed for a batch of %d", len(items))
                for job in batch:
                    _set(job.future, error=err)

    @staticmethod
    def _deliver(batch: list[_Job], results: Sequence[Any]) -> None:
        results = list(results)
        if len(results) != sum(len(job.items) for job in batch):
            raise RuntimeError(f"generate returned {len(results)} results for {sum(len(j.items) for j in batch)} items")
        start = 0
        for job in batch:
            _set(job.future, result=results[start : start + len(job.items)])
            start += len(job.items)


def _set(future: asyncio.Future, result: Any = None, error: BaseException | None = None) -> None:
    if future.done():  # the request gave up (timeout, client gone)
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
