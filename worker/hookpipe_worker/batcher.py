"""Group commit: coalesce concurrent push requests into one write per sink per batch.

Pub/Sub push delivers one message per request, and Cloud Run runs many requests at once per
instance. Each request ``submit``s its row and waits; a dispatcher closes a batch when it reaches
``max_rows`` or ``max_bytes`` or its oldest row has waited ``max_delay`` seconds, and commits it
with up to ``max_concurrent`` batches in flight. Each waiter gets its own row's outcome.

The queue is bounded (``max_queued`` rows): beyond it ``submit`` fails at once with
:class:`Overloaded` so the request is answered 429 and Pub/Sub backs off, instead of timing out.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from hookpipe_worker.errors import Overloaded, ShuttingDown, WorkerError
from hookpipe_worker.rows import EventRow

CommitFn = Callable[[Sequence[EventRow]], Awaitable[dict[str, WorkerError | None]]]


@dataclass(frozen=True, slots=True)
class BatchPolicy:
    max_rows: int = 500
    max_bytes: int = 5 * 1024 * 1024
    max_delay: float = 0.02
    max_concurrent: int = 4
    max_queued: int = 5000


@dataclass
class _Pending:
    row: EventRow
    future: asyncio.Future[None]
    enqueued: float = field(default_factory=time.monotonic)


class GroupCommitter:
    def __init__(
        self,
        commit: CommitFn,
        policy: BatchPolicy,
        on_batch: Callable[[int, float], None] | None = None,
    ) -> None:
        self._commit = commit
        self._policy = policy
        self._on_batch = on_batch
        self._queue: deque[_Pending] = deque()
        self._queued_bytes = 0
        self._wakeup = asyncio.Event()
        self._slots = asyncio.Semaphore(policy.max_concurrent)
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        self._dispatcher = asyncio.get_running_loop().create_task(self._dispatch())

    @property
    def queued(self) -> int:
        return len(self._queue)

    async def submit(self, row: EventRow) -> None:
        """Wait until ``row`` is committed in both sinks; raise why it was not."""
        if self._closing:
            raise ShuttingDown("instance is shutting down")
        if len(self._queue) >= self._policy.max_queued:
            raise Overloaded(f"{len(self._queue)} rows already queued")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(row, future))
        self._queued_bytes += row.size
        self._wakeup.set()
        await future

    def _batch_ready(self) -> bool:
        policy = self._policy
        return (
            self._closing
            or len(self._queue) >= policy.max_rows
            or self._queued_bytes >= policy.max_bytes
            or time.monotonic() - self._queue[0].enqueued >= policy.max_delay
        )

    async def _dispatch(self) -> None:
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            if not self._batch_ready():
                wait = self._policy.max_delay - (time.monotonic() - self._queue[0].enqueued)
                self._wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), timeout=max(wait, 0.0))
                continue
            await self._slots.acquire()
            batch = self._take()
            task = asyncio.create_task(self._run(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _take(self) -> list[_Pending]:
        batch: list[_Pending] = []
        size = 0
        while self._queue and len(batch) < self._policy.max_rows:
            item = self._queue[0]
            if batch and size + item.row.size > self._policy.max_bytes:
                break
            batch.append(self._queue.popleft())
            size += item.row.size
        self._queued_bytes -= size
        return batch

    async def _run(self, batch: list[_Pending]) -> None:
        started = time.monotonic()
        try:
            results = await self._commit([p.row for p in batch])
        except BaseException as exc:  # every waiter must hear about it, even on cancellation
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            for pending in batch:
                if pending.future.done():
                    continue
                error = results.get(pending.row.event_id)
                if error is None:
                    pending.future.set_result(None)
                else:
                    pending.future.set_exception(error)
        finally:
            self._slots.release()
            if self._on_batch is not None:
                self._on_batch(len(batch), time.monotonic() - started)

    async def close(self) -> None:
        """Stop taking rows, commit what is queued, wait for batches in flight."""
        self._closing = True
        self._wakeup.set()
        await self._dispatcher
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
