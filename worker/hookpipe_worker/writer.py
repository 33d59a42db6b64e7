"""Commit one batch to both sinks, so that a request is answered 2xx only when its row is in both.

Order, per batch:

1. open a transaction in the event store (Postgres) and insert the rows (sorted by event id) —
   not yet committed;
2. insert the rows the store accepted into the row log (BigQuery);
3. delete from the open transaction the rows the row log refused; for rows the store already
   held, keep the copy ingest received first (two bodies can share an id; the row log's view
   keeps the same one); move the current-state rows (e.g. one per LeadProsper lead) forward to
   the newest of the committed events, and commit.

A failure before the commit rolls the store back. When the store was interrupted — the connection
was lost or refused, the server is restarting, a deadlock (:class:`SinkInterrupted`) — the batch is
tried again here, with backoff, for up to ``retry_seconds``: a blip or a failover of a few seconds
then costs latency, not a redelivery. Beyond that (or for any other failure) every row of the batch
is answered 503 and Pub/Sub redelivers it. The whole commit, every attempt and both sinks (the row
log may take several requests, each with its own timeout and retries), ends within
``deadline_seconds`` or its rows are answered 503: less than the push's ack deadline, so Pub/Sub
never redelivers a push that is still being committed (a test keeps the two consistent). Row-log
rows already written by a failed or abandoned attempt are absorbed by row ids and the dedup view.
A row either sink refuses for its values fails alone (dead-lettered), never its batch-mates.

The sinks are ports (:class:`~hookpipe_worker.ports.EventStore`,
:class:`~hookpipe_worker.ports.RowLog`); the adapters translate their library's errors and own
their statements (the current-state upsert is the Postgres adapter's), so this module knows
neither psycopg nor BigQuery and is unit-tested with fakes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence

from hookpipe_worker.errors import SinkInterrupted, SinkUnavailable, WorkerError
from hookpipe_worker.ports import BatchResult, EventStore, RowLog
from hookpipe_worker.rows import EventRow

FIRST_RETRY_DELAY = 0.1
MAX_RETRY_DELAY = 2.0

# Called before each retry: the attempt that failed (1-based), why, and the delay before the next.
type OnRetry = Callable[[int, BaseException, float], None]
# Called after a commit in which the store refused to move some keys' current state: the source,
# and per event id (committed in both sinks all the same) why its key did not move.
type OnStateRefused = Callable[[str, Mapping[str, str]], None]


class BatchWriter:
    def __init__(
        self,
        store: EventStore,
        row_log: RowLog,
        *,
        retry_seconds: float,
        deadline_seconds: float,
        on_retry: OnRetry | None = None,
        on_state_refused: OnStateRefused | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.store = store
        self.row_log = row_log
        self._retry_seconds = retry_seconds
        self._deadline_seconds = deadline_seconds
        self._on_retry = on_retry
        self._on_state_refused = on_state_refused
        self._clock = clock
        self._sleep = sleep

    async def commit(self, rows: Sequence[EventRow]) -> BatchResult:
        """Commit ``rows`` (duplicates by event id count once); per event id, None or why not.
        Raises :class:`~hookpipe_worker.errors.SinkUnavailable` when the batch as a whole could not
        be committed: every row is then answered 503."""
        unique = sorted({r.event_id: r for r in rows}.values(), key=lambda r: r.event_id)
        try:
            async with asyncio.timeout(self._deadline_seconds):
                return await self._commit_with_retries(unique)
        except TimeoutError:
            # The open transaction was rolled back; rows the row log may still take are
            # absorbed by its row ids and the dedup view when Pub/Sub redelivers.
            raise SinkUnavailable(
                f"the commit did not finish within {self._deadline_seconds:g} s"
            ) from None

    async def _commit_with_retries(self, unique: Sequence[EventRow]) -> BatchResult:
        # No new attempt starts after the retry window; one that started may still wait up to
        # the pool timeout for a connection, within the commit's deadline.
        deadline = self._clock() + self._retry_seconds
        delay = FIRST_RETRY_DELAY
        attempt = 1
        while True:
            try:
                return await self._commit_once(unique)
            except SinkInterrupted as exc:
                if self._clock() + delay > deadline:
                    raise
                if self._on_retry is not None:
                    self._on_retry(attempt, exc, delay)
                await self._sleep(delay)
                delay = min(delay * 2, MAX_RETRY_DELAY)
                attempt += 1

    async def _commit_once(self, unique: Sequence[EventRow]) -> BatchResult:
        rejected: dict[str, WorkerError] = {}
        async with self.store.transaction() as tx:
            inserted, store_failed = await tx.insert(unique)
            rejected.update(store_failed)
            accepted = [r for r in unique if r.event_id not in rejected]
            log_rejected = await self.row_log.insert(accepted)
            rejected.update(log_rejected)
            take_back = sorted(set(log_rejected) & inserted)
            if take_back:
                await tx.delete(take_back)
            committed = [r for r in accepted if r.event_id not in log_rejected]
            # Already stored (a redelivery, or another body with this id): both sinks keep the
            # copy ingest received first (the row log's view does the same among its copies).
            await tx.keep_first_received([r for r in committed if r.event_id not in inserted])
            state_refused = await tx.upsert_current_state(committed)
        # Reported only once the commit held: the events are in both sinks, marked nowhere, and
        # current state is derived from them, so this is an operator's alert, not a redelivery
        # (which would fail the same way).
        if self._on_state_refused is not None:
            for source, refused in state_refused.items():
                if refused:
                    self._on_state_refused(source, refused)
        return {r.event_id: rejected.get(r.event_id) for r in unique}
