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


FILL_WAIT = 5  # with another batch running, a new one waits up to this many max_wait for its share


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
                 max_wait_s: float = 0.010, max_queue: int = 256, workers: int = 1):  # fmt: skip
        """``workers``: batches that may run at once (``generate`` must then be thread-safe, e.g. a pool of
        generation processes); timelines and streams (``run_in_worker``) still run one at a time."""
        self._generate = generate
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.max_queue = max_queue
        self.stats = BatchStats()
        self._queue: asyncio.Queue[_Job] | None = None
        self._task: asyncio.Task | None = None
        # One thread per concurrent batch; the in-process pipeline (run_in_worker) is not re-entrant: one thread.
        self.workers = workers
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="generate")
        self._exclusive_executor = (self._executor if workers == 1 else
                                    concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="exclusive"))  # fmt: skip
        self._last_arrival = float("-inf")
        self._carried: _Job | None = None
        self._running: set[asyncio.Task] = set()  # batches being generated

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self._queue = asyncio.Queue(maxsize=self.max_queue)
        self._task = asyncio.create_task(self._collect_forever(), name="batch-collector")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._executor.shutdown(wait=True, cancel_futures=True)
        self._exclusive_executor.shutdown(wait=True, cancel_futures=True)

    def run_in_worker(self, fn: Callable, *args) -> asyncio.Future:
        """Run ``fn`` on the generation thread (e.g. a streaming generator), in turn with the batches."""
        return asyncio.get_running_loop().run_in_executor(self._exclusive_executor, fn, *args)

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
            self._drop_abandoned()  # requests that gave up (timed out, client gone) free their places
            try:
                self._queue.put_nowait(job)
            except asyncio.QueueFull:
                raise QueueFullError(f"the server is busy: {self.max_queue} requests are queued already") from None
        self._last_arrival = now
        return job.future

    def _drop_abandoned(self) -> None:
        assert self._queue is not None
        waiting = []
        while not self._queue.empty():
            job = self._queue.get_nowait()
            if not job.future.done():
                waiting.append(job)
        for job in waiting:  # same order
            self._queue.put_nowait(job)

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
        # With another batch running there is no hurry: wait (up to FILL_WAIT x max_wait) until this batch
        # holds its share of max_batch, rather than take whatever is queued (32 busy clients on 2 workers
        # otherwise split into groups of 8).
        share = max(1, self.max_batch // self.workers)
        while size < self.max_batch:
            busy = bool(self._running)  # now: a lone client's batch never waits on one that has finished
            timeout = None if not batch else (0.0 if busy and size >= share else deadline - loop.time())
            job = await self._next_job(timeout)
            if job is None:
                break
            if job.future.done():  # timed out or cancelled while it queued
                continue
            if size + len(job.items) > self.max_batch:
                self._carried = job  # starts the next batch
                break
            if not batch:
                deadline = job.arrived + (self.max_wait_s if job.expects_company else 0.0)
                if self._running:
                    deadline = max(deadline, loop.time() + FILL_WAIT * self.max_wait_s)
            batch.append(job)
            size += len(job.items)
        return batch

    async def _collect_forever(self) -> None:
        slots = asyncio.Semaphore(self.workers)
        while True:
            await slots.acquire()  # a free worker first, so a batch is not formed before it can run
            batch = await self._next_batch()
            task = asyncio.create_task(self._run(batch))
            self._running.add(task)
            task.add_done_callback(lambda t: (self._running.discard(t), slots.release()))

    async def _run(self, batch: list[_Job]) -> None:
        loop = asyncio.get_running_loop()
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
