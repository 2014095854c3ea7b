"""Dynamic batching: requests that arrive together run as one engine batch on one worker thread.

The worker thread owns the model. It takes the first waiting request, then keeps collecting for up
to `max_wait_ms` (or until `max_batch_size` inputs are in hand) and runs every collected input
through one `Engine.run`: one window, sorted by length, padded per batch, exactly the path
`tasktool infer` takes. Answers go back to the event loop with `loop.call_soon_threadsafe`, so the
loop never waits on the model. A bad input becomes that input's `{"error": ...}` record
(`on_error="skip"`); a batch that fails as a whole is retried request by request, so one request
cannot fail its neighbours.

Besides batched inference the worker runs exclusive jobs (`call`, `stream`): a chat completion, or a
streamed one whose pieces are handed to the loop as they come.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from tasktool.engine import Engine
from tasktool.errors import TaskToolError
from tasktool.io.records import Item

_STOP = object()
_END = object()


class Overloaded(TaskToolError):
    """The queue is full or the server is stopping: try again later (HTTP 503)."""


@dataclass
class _Job:
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future
    items: list[Item] = field(default_factory=list)
    call: Callable[[], Any] | None = None  # an exclusive job instead of items
    pieces: asyncio.Queue | None = None  # a streaming job: pieces go here
    cancelled: bool = False  # the client went away: a streaming job stops early

    def wanted(self) -> bool:
        return not (self.cancelled or self.future.done())


def _resolve(future: asyncio.Future, value: Any = None, error: BaseException | None = None) -> None:
    if future.done():  # timed out or cancelled meanwhile: nobody waits for it
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)


@dataclass
class BatchStats:
    requests: int = 0  # inference requests answered
    inputs: int = 0
    batches: int = 0  # engine runs
    largest: int = 0  # most inputs in one engine run
    calls: int = 0  # exclusive jobs (chat)


class Batcher:
    def __init__(
        self,
        predictor,
        max_batch_size: int = 32,
        max_batch_tokens: int | None = None,
        max_wait_ms: float = 5.0,
        workers: int | None = 1,
        max_queue: int = 4096,
    ):
        if max_batch_size < 1:
            raise TaskToolError("--max-batch-size must be at least 1")
        if max_wait_ms < 0:
            raise TaskToolError("--max-wait-ms cannot be negative", "0 runs each request as it comes")
        self.predictor = predictor
        self.max_batch_size = max_batch_size
        self.max_batch_tokens = max_batch_tokens
        self.max_wait = max_wait_ms / 1000
        self.workers = workers
        self.max_queue = max_queue
        self.stats = BatchStats()
        self._queue: queue.Queue = queue.Queue()
        self._queued_inputs = 0  # inputs waiting (not yet taken by the worker)
        self._lock = threading.Lock()
        self._closing = False
        self._thread: threading.Thread | None = None
        self._pending: _Job | None = None  # taken from the queue but left for the next round

    # ---------------------------------------------------------------- event-loop side

    @property
    def queued(self) -> int:
        return self._queued_inputs

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="tasktool-serve-model", daemon=True)
            self._thread.start()

    def _submit(self, job: _Job, size: int) -> None:
        with self._lock:
            if self._closing:
                raise Overloaded("the server is shutting down", "retry against another instance")
            if size and self._queued_inputs + size > self.max_queue:
                raise Overloaded(
                    f"the server is busy ({self._queued_inputs} inputs waiting)", "retry in a moment"
                )
            self._queued_inputs += size
        self._queue.put(job)

    async def infer(self, items: list[Item]) -> list[dict]:
        """One record per item, in order (ids and inputs as the items give them)."""
        loop = asyncio.get_running_loop()
        job = _Job(loop, loop.create_future(), items=list(items))
        self._submit(job, len(job.items))
        return await job.future

    async def call(self, fn: Callable[[], Any]) -> Any:
        """Run fn() on the worker thread (alone, between batches); its result or its exception."""
        loop = asyncio.get_running_loop()
        job = _Job(loop, loop.create_future(), call=fn)
        self._submit(job, 0)
        return await job.future

    async def stream(self, make: Callable[[], Iterable[Any]], timeout: float | None = None):
        """Iterate make() on the worker thread, yielding each piece here as it comes."""
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue = asyncio.Queue()
        job = _Job(loop, loop.create_future(), call=make, pieces=pieces)
        self._submit(job, 0)
        try:
            while True:
                piece = await asyncio.wait_for(pieces.get(), timeout)
                if piece is _END:
                    return
                if isinstance(piece, BaseException):
                    raise piece
                yield piece
        finally:
            job.cancelled = True  # the client left or the stream ended: the worker stops iterating

    def close(self, timeout: float = 5.0) -> bool:
        """Refuse new work, let the worker finish what is queued, stop it; False if it did not stop in time."""
        with self._lock:
            self._closing = True
        if self._thread is None:
            return True
        self._queue.put(_STOP)
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # ---------------------------------------------------------------- worker thread

    def _next(self, timeout: float | None = None):
        if self._pending is not None:
            job, self._pending = self._pending, None
            return job
        return self._queue.get(timeout=timeout) if timeout is not None else self._queue.get()

    def _taken(self, job: _Job) -> None:
        with self._lock:
            self._queued_inputs -= len(job.items)

    def _work(self) -> None:
        while True:
            job = self._next()
            if job is _STOP:
                return
            self._taken(job)
            if job.call is not None:
                self._run_call(job)
                continue
            jobs = self._collect(job)
            jobs = [j for j in jobs if j.wanted()]  # timed out while waiting: skip
            if jobs:
                self._run_batch(jobs)

    def _collect(self, first: _Job) -> list[_Job]:
        """The first request and those arriving within max_wait of it, up to max_batch_size inputs."""
        jobs, count = [first], len(first.items)
        deadline = time.monotonic() + self.max_wait
        while count < self.max_batch_size:
            left = deadline - time.monotonic()
            try:
                job = self._next(timeout=max(left, 0)) if left > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if job is _STOP or job.call is not None or count + len(job.items) > self.max_batch_size:
                self._pending = job  # runs next round (a stop: after this batch)
                break
            self._taken(job)
            jobs.append(job)
            count += len(job.items)
        return jobs

    def _engine(self) -> Engine:
        return Engine(
            self.predictor,
            batch_size=self.max_batch_size,
            max_batch_tokens=self.max_batch_tokens,
            on_error="skip",
            workers=self.workers,
        )

    def _records(self, jobs: list[_Job]) -> list[list[dict]]:
        """One engine run over every job's items; the records split back per job, with their own ids."""
        items: list[Item] = []
        for job in jobs:
            items.extend(
                Item(len(items) + k, it.payload, it.display, it.meta) for k, it in enumerate(job.items)
            )
        records = list(self._engine().run(items))
        out, start = [], 0
        for job in jobs:
            mine = records[start : start + len(job.items)]
            start += len(job.items)
            for record, item in zip(mine, job.items, strict=True):
                record["id"] = item.id
            out.append(mine)
        self.stats.batches += 1
        self.stats.largest = max(self.stats.largest, len(items))
        return out

    def _run_batch(self, jobs: list[_Job]) -> None:
        try:
            answers = self._records(jobs)
        except Exception as exc:  # noqa: BLE001 - a whole-batch failure: each request alone, so it fails alone
            if len(jobs) > 1:
                for job in jobs:
                    self._run_batch([job])
            else:  # handed to the request, which answers with an error
                jobs[0].loop.call_soon_threadsafe(_resolve, jobs[0].future, None, exc)
            return
        for job, records in zip(jobs, answers, strict=True):
            self.stats.requests += 1
            self.stats.inputs += len(records)
            job.loop.call_soon_threadsafe(_resolve, job.future, records)

    def _run_call(self, job: _Job) -> None:
        if not job.wanted():
            return
        self.stats.calls += 1
        if job.pieces is None:
            try:
                value = job.call()
            except Exception as exc:  # noqa: BLE001 - handed to the request
                job.loop.call_soon_threadsafe(_resolve, job.future, None, exc)
            else:
                job.loop.call_soon_threadsafe(_resolve, job.future, value)
            return
        put = job.pieces.put_nowait
        iterator = None
        try:
            iterator = iter(job.call())
            for piece in iterator:
                job.loop.call_soon_threadsafe(put, piece)
                if job.cancelled:
                    break
            job.loop.call_soon_threadsafe(put, _END)
        except Exception as exc:  # noqa: BLE001 - handed to the stream, which reports it
            job.loop.call_soon_threadsafe(put, exc)
        finally:
            with contextlib.suppress(Exception):
                getattr(iterator, "close", lambda: None)()
            job.loop.call_soon_threadsafe(_resolve, job.future, None)
