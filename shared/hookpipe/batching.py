"""Group commit: coalesce concurrent callers' items into batches, one I/O call per batch.

Both services need it. Ingest's requests each wait for their own Pub/Sub publish; the worker's push
requests each wait for their own row to be committed. Each caller ``submit``s one item and awaits
its own outcome; a dispatcher closes a batch when it holds ``max_items`` or ``max_bytes``, or its
oldest item has waited ``max_delay`` seconds, or (``recent_window``) it holds as many items as
the largest batch taken in the last ``recent_window`` seconds, and hands it to ``flush`` with at
most ``max_concurrent`` flushes in flight. While every slot is busy, items accumulate: batches
grow with load by themselves, and with ``max_delay=0`` a lone caller waits for no one.

``recent_window`` is for callers that come back together (the pushes a batch answered are the
next batch's, as Pub/Sub's push and a load generator keep a number of requests in flight): when
the callers that were there are back, no one else is coming, so the batch goes at once rather
than after ``max_delay``. Two pushes in flight make batches of two that never wait; eighty make
batches that still wait (up to ``max_delay``) for all eighty.

A queued item whose caller has given up (timed out, disconnected) is dropped when its batch is
taken: it is never flushed after its caller was answered.

The queue is bounded (``max_queued`` items): beyond it ``submit`` raises the ``overloaded`` error
at once, so the caller can answer "retry later" instead of timing out.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from hookpipe.errors import HookpipeError

# One outcome per item, in order: a result, or the exception that item's caller gets.
type FlushFn[T, R] = Callable[[Sequence[T]], Awaitable[Sequence[R | BaseException]]]


# At most this many recent batches are remembered (``recent_window``).
RECENT_BATCHES = 64


@dataclass(frozen=True, slots=True)
class BatchPolicy:
    max_items: int = 500
    max_bytes: int = 5 * 1024 * 1024
    max_delay: float = 0.0
    max_concurrent: int = 4
    recent_window: float | None = None  # see the module's docstring; None: always max_delay
    max_queued: int = 5000


class BatcherClosed(HookpipeError):
    """``submit`` after ``close``: the process is shutting down."""

    status = 503


@dataclass
class _Pending[T, R]:
    item: T
    size: int
    future: asyncio.Future[R]
    enqueued: float = field(default_factory=time.monotonic)


class MicroBatcher[T, R]:
    def __init__(
        self,
        flush: FlushFn[T, R],
        policy: BatchPolicy,
        *,
        size: Callable[[T], int],
        overloaded: Callable[[int], BaseException],
        closed: Callable[[], BaseException] = BatcherClosed,
        on_batch: Callable[[int, float], None] | None = None,
    ) -> None:
        self._flush = flush
        self._policy = policy
        self._size = size
        self._overloaded = overloaded
        self._closed = closed
        self._on_batch = on_batch
        self._queue: deque[_Pending[T, R]] = deque()
        self._queued_bytes = 0
        # (when, size) of the batches taken lately; bounded, as the window may hold many.
        self._recent: deque[tuple[float, int]] = deque(maxlen=RECENT_BATCHES)
        self._wakeup = asyncio.Event()
        self._slots = asyncio.Semaphore(policy.max_concurrent)
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        self._dispatcher = asyncio.get_running_loop().create_task(self._dispatch())

    @property
    def queued(self) -> int:
        return len(self._queue)

    async def submit(self, item: T) -> R:
        """Wait for ``item``'s batch to be flushed; return its result or raise its error."""
        if self._closing:
            raise self._closed()
        if len(self._queue) >= self._policy.max_queued:
            raise self._overloaded(len(self._queue))
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        size = self._size(item)
        pending = _Pending(item, size, future)
        self._queue.append(pending)
        self._queued_bytes += size
        self._wakeup.set()
        return await future

    def _wait_left(self) -> float:
        """How long the queued batch may still wait for more items (0: it is ready)."""
        policy = self._policy
        if (
            self._closing
            or len(self._queue) >= policy.max_items
            or self._queued_bytes >= policy.max_bytes
        ):
            return 0.0
        now = time.monotonic()
        if policy.recent_window is not None:
            recent = self._recent
            while recent and now - recent[0][0] > policy.recent_window:
                recent.popleft()
            if recent and len(self._queue) >= max(size for _, size in recent):
                return 0.0
        return max(policy.max_delay - (now - self._queue[0].enqueued), 0.0)

    async def _dispatch(self) -> None:
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            wait = self._wait_left()
            if wait > 0:
                self._wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), timeout=wait)
                continue
            await self._slots.acquire()
            batch = self._take()
            if not batch:  # every queued caller had given up
                self._slots.release()
                continue
            task = asyncio.create_task(self._run(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _take(self) -> list[_Pending[T, R]]:
        batch: list[_Pending[T, R]] = []
        size = 0
        while self._queue and len(batch) < self._policy.max_items:
            pending = self._queue[0]
            if pending.future.done():
                # Its caller gave up (a timeout, a disconnect) and has had its answer, e.g.
                # ingest's 503: flushing it now would publish a webhook its sender was told
                # failed. (An item already in flight when its caller gives up still completes.)
                self._queue.popleft()
                self._queued_bytes -= pending.size
                continue
            if batch and size + pending.size > self._policy.max_bytes:
                break
            batch.append(self._queue.popleft())
            size += pending.size
        self._queued_bytes -= size
        if batch and self._policy.recent_window is not None:
            self._recent.append((time.monotonic(), len(batch)))
        return batch

    async def _run(self, batch: list[_Pending[T, R]]) -> None:
        started = time.monotonic()
        try:
            outcomes = await self._flush([p.item for p in batch])
            if len(outcomes) != len(batch):
                raise RuntimeError(f"flush gave {len(outcomes)} outcomes for {len(batch)} items")
        except BaseException as exc:  # every caller must hear of it, even on cancellation
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            for pending, outcome in zip(batch, outcomes, strict=True):
                if pending.future.done():  # the caller gave up (timeout, disconnect)
                    continue
                if isinstance(outcome, BaseException):
                    pending.future.set_exception(outcome)
                else:
                    pending.future.set_result(outcome)
        finally:
            self._slots.release()
            if self._on_batch is not None:
                self._on_batch(len(batch), time.monotonic() - started)

    async def close(self) -> None:
        """Stop taking items, flush what is queued, wait for flushes in flight."""
        self._closing = True
        self._wakeup.set()
        await self._dispatcher
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
