"""Requests that arrive together, scored together: a batching window in front of one worker thread.

The first waiting job opens a window of `window_s`; every job that arrives within it (up to
`max_batch`) joins the batch, which one call of `work` then handles on the worker thread, so the
models run one at a time and throughput grows with load. At most `max_waiting` jobs wait; beyond
that `submit` refuses at once (`Busy`), so an overloaded server answers 503 instead of queueing
without bound.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class Busy(RuntimeError):
    """More jobs are waiting than the batcher takes."""


@dataclass
class _Job:
    item: Any
    future: concurrent.futures.Future = field(default_factory=concurrent.futures.Future)


class Batcher:
    """`await submit(item)` -> `work([item, ...])`'s result for that item (or its exception)."""

    def __init__(
        self,
        work: Callable[[list[Any]], list[Any]],
        window_s: float = 0.01,
        max_batch: int = 16,
        max_waiting: int = 64,
    ):
        self.work, self.window_s, self.max_batch = work, window_s, max_batch
        self.jobs: queue.Queue[_Job | None] = queue.Queue(maxsize=max_waiting)
        self.batches = 0  # batches run so far (tests and the benchmark read it)
        self.thread = threading.Thread(target=self._run, name="ser-batcher", daemon=True)
        self.thread.start()

    async def submit(self, item: Any) -> Any:
        job = _Job(item)
        try:
            self.jobs.put_nowait(job)
        except queue.Full:
            raise Busy(f"{self.jobs.maxsize} requests are already waiting") from None
        return await asyncio.wrap_future(job.future)

    def close(self) -> None:
        self.jobs.put(None)
        self.thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            first = self.jobs.get()
            if first is None:
                return
            batch, closes = [first], time.monotonic() + self.window_s
            while len(batch) < self.max_batch:
                try:
                    job = self.jobs.get(timeout=max(closes - time.monotonic(), 0))
                except queue.Empty:
                    break
                if job is None:
                    self.jobs.put(None)  # stop after this batch
                    break
                batch.append(job)
            self._handle(batch)

    def _handle(self, batch: list[_Job]) -> None:
        self.batches += 1
        try:
            results = self.work([job.item for job in batch])
        except Exception as error:  # noqa: BLE001 - each waiting request gets the failure, the thread goes on
            for job in batch:
                job.future.set_exception(error)
            return
        for job, result in zip(batch, results, strict=True):
            if isinstance(result, BaseException):
                job.future.set_exception(result)
            else:
                job.future.set_result(result)
