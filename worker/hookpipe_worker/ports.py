"""The worker's ports: what its use cases (:mod:`hookpipe_worker.process`,
:mod:`hookpipe_worker.writer`) need from the outside world, declared apart from the adapters
that provide it (:mod:`hookpipe_worker.sinks`), as httpx's ``_transports/base.py`` declares its
transports. The use cases import this module and never an adapter; each adapter translates its
library's errors into :mod:`hookpipe_worker.errors`, so nothing here names psycopg, BigQuery or
Pub/Sub. Tests give the use cases tiny fakes of these.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from hookpipe_worker.dead_letters import ArchivedDeadLetter
from hookpipe_worker.delivery import Delivery
from hookpipe_worker.errors import RowRejected, WorkerError
from hookpipe_worker.rows import EventRow

# Per event id: None when committed in both sinks, else why not.
type BatchResult = dict[str, WorkerError | None]


class StoreTransaction(Protocol):
    """One open transaction in the event store."""

    async def insert(
        self, rows: Sequence[EventRow]
    ) -> tuple[set[str], dict[str, WorkerError]]: ...  # (ids inserted now, why each other failed)

    async def delete(self, event_ids: Sequence[str]) -> None: ...

    async def keep_first_received(self, rows: Sequence[EventRow]) -> None: ...

    async def upsert_current_state(
        self, rows: Sequence[EventRow]
    ) -> Mapping[str, Mapping[str, str]]:
        """Move each source's current-state rows (e.g. one per LeadProsper lead) forward to the
        newest of ``rows``; per source, per event id whose key the store refused to move, why."""
        ...


class EventStore(Protocol):
    """The transactional sink (Postgres). ``transaction()`` commits when its block ends without an
    exception; it raises :class:`~hookpipe_worker.errors.SinkInterrupted` for a passing
    interruption."""

    def transaction(self) -> AbstractAsyncContextManager[StoreTransaction]: ...


class RowLog(Protocol):
    """The append-only sink (BigQuery), de-duplicated by event id."""

    async def insert(self, rows: Sequence[EventRow]) -> dict[str, RowRejected]: ...


class RowWriter(Protocol):
    """Both sinks at once: what the group-commit batcher flushes a batch into."""

    async def commit(self, rows: Sequence[EventRow]) -> BatchResult: ...


class DeadLetterTopic(Protocol):
    """Where a message that cannot succeed goes, with why; returns its new message id once
    Pub/Sub confirmed it, or raises :class:`~hookpipe_worker.errors.SinkUnavailable`."""

    async def publish(self, delivery: Delivery, exc: BaseException) -> str: ...


class Archive(Protocol):
    """The dead-letter archive (both sinks' ``dead_letters``): holds ``record`` when this returns,
    or raises :class:`~hookpipe_worker.errors.SinkUnavailable`."""

    async def write(self, record: ArchivedDeadLetter) -> None: ...
