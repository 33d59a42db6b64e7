"""Commit one batch to both sinks, so that a request is answered 2xx only when its row is in both.

Order, per batch:

1. open a Postgres transaction and insert the rows (sorted by event id) — not yet committed;
2. insert the rows Postgres accepted into BigQuery;
3. delete from the open transaction the rows BigQuery refused, move the current-state rows
   (e.g. one per LeadProsper lead) forward to the newest of the committed events, and commit.

A failure before the commit rolls back Postgres. When Postgres itself was the trouble — the
connection was lost or refused, the server is restarting, a deadlock — the batch is tried again
here, with backoff, for up to ``retry_seconds``: a blip or a failover of a few seconds then costs
latency, not a redelivery. Beyond that (or for any other failure) every row of the batch is
answered 503 and Pub/Sub redelivers it. BigQuery rows already written by a failed attempt are
absorbed by row ids and the dedup view. A row either sink refuses for its values fails alone
(dead-lettered), never its batch-mates.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

import psycopg
from hookpipe.sources import SourceConfig
from psycopg import AsyncConnection
from psycopg_pool import PoolTimeout

from hookpipe_worker.errors import WorkerError
from hookpipe_worker.rows import EventRow
from hookpipe_worker.sinks.bigquery import BigQuerySink
from hookpipe_worker.sinks.postgres import PostgresSink, unavailable

# Per event id: None when committed in both sinks, else why not.
BatchResult = dict[str, WorkerError | None]

# Postgres failures worth trying again at once on a fresh connection: the connection was lost or
# refused, the server is shutting down (class 57), a deadlock or serialization failure (class 40).
# Anything else (a missing table mid-deploy, a bad statement) goes straight back to Pub/Sub.
RETRYABLE = (psycopg.OperationalError, PoolTimeout)
FIRST_RETRY_DELAY = 0.1
MAX_RETRY_DELAY = 2.0

# Called before each retry: the attempt that failed (1-based), why, and the delay before the next.
type OnRetry = Callable[[int, BaseException, float], None]


class RowWriter(Protocol):
    async def commit(self, rows: Sequence[EventRow]) -> BatchResult: ...


class BatchWriter:
    def __init__(
        self,
        postgres: PostgresSink,
        bigquery: BigQuerySink,
        sources: Mapping[str, SourceConfig],
        *,
        retry_seconds: float,
        on_retry: OnRetry | None = None,
    ) -> None:
        self.postgres = postgres
        self.bigquery = bigquery
        self._retry_seconds = retry_seconds
        self._on_retry = on_retry
        # Per source with a current-state table: the table and its columns' types, worked out
        # once rather than per batch.
        self._current_state_tables = [
            (source, config.current_state, {n: c.type for n, c in config.columns.items()})
            for source, config in sorted(sources.items())
            if config.current_state is not None
        ]

    async def commit(self, rows: Sequence[EventRow]) -> BatchResult:
        unique = sorted({r.event_id: r for r in rows}.values(), key=lambda r: r.event_id)
        # No new attempt starts after the deadline; one that started may still wait up to the
        # pool timeout for a connection.
        deadline = time.monotonic() + self._retry_seconds
        delay = FIRST_RETRY_DELAY
        attempt = 1
        while True:
            try:
                return await self._commit_once(unique)
            except RETRYABLE as exc:
                if time.monotonic() + delay > deadline:
                    raise unavailable(exc) from exc
                if self._on_retry is not None:
                    self._on_retry(attempt, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_RETRY_DELAY)
                attempt += 1

    async def _commit_once(self, unique: Sequence[EventRow]) -> BatchResult:
        rejected: dict[str, WorkerError] = {}
        try:
            async with self.postgres.pool.connection() as conn, conn.transaction():
                inserted, pg_failed = await self.postgres.insert(conn, unique)
                rejected.update(pg_failed)
                accepted = [r for r in unique if r.event_id not in rejected]
                bq_rejected = await self.bigquery.insert(accepted)
                rejected.update(bq_rejected)
                take_back = sorted(set(bq_rejected) & inserted)
                if take_back:
                    await self.postgres.delete(conn, take_back)
                committed = [r for r in accepted if r.event_id not in bq_rejected]
                await self._current_state(conn, committed)
        except RETRYABLE:
            raise
        except psycopg.Error as exc:
            raise unavailable(exc) from exc
        return {r.event_id: rejected.get(r.event_id) for r in unique}

    async def _current_state(self, conn: AsyncConnection, rows: Sequence[EventRow]) -> None:
        for source, table, types in self._current_state_tables:
            mine = [r for r in rows if r.source == source]
            if mine:
                await self.postgres.upsert_current_state(conn, table, types, mine)
