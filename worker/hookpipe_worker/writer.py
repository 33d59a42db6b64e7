"""Commit one batch to both sinks, so that a request is answered 2xx only when its row is in both.

Order, per batch:

1. open a Postgres transaction and insert the rows (sorted by event id) — not yet committed;
2. insert the rows Postgres accepted into BigQuery;
3. delete from the open transaction the rows BigQuery refused, move the current-state rows
   (e.g. one per LeadProsper lead) forward to the newest of the committed events, and commit.

A failure before the commit rolls back Postgres and the whole batch is retried by Pub/Sub; BigQuery
rows already written by a failed attempt are absorbed by row ids and the dedup view. A row either
sink refuses for its values fails alone (dead-lettered), never its batch-mates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import psycopg
from hookpipe.sources import SourceConfig
from psycopg import AsyncConnection
from psycopg_pool import PoolTimeout

from hookpipe_worker.errors import SinkUnavailable, WorkerError
from hookpipe_worker.rows import EventRow
from hookpipe_worker.sinks.bigquery import BigQuerySink
from hookpipe_worker.sinks.postgres import PostgresSink, unavailable

# Per event id: None when committed in both sinks, else why not.
BatchResult = dict[str, WorkerError | None]


class RowWriter(Protocol):
    async def commit(self, rows: Sequence[EventRow]) -> BatchResult: ...


class BatchWriter:
    def __init__(
        self,
        postgres: PostgresSink,
        bigquery: BigQuerySink,
        sources: Mapping[str, SourceConfig],
    ) -> None:
        self.postgres = postgres
        self.bigquery = bigquery
        # Per source with a current-state table: the table and its columns' types, worked out
        # once rather than per batch.
        self._current_state_tables = [
            (source, config.current_state, {n: c.type for n, c in config.columns.items()})
            for source, config in sorted(sources.items())
            if config.current_state is not None
        ]

    async def commit(self, rows: Sequence[EventRow]) -> BatchResult:
        unique = sorted({r.event_id: r for r in rows}.values(), key=lambda r: r.event_id)
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
        except (psycopg.Error, PoolTimeout) as exc:
            raise unavailable(exc) from exc
        except SinkUnavailable:
            raise
        return {r.event_id: rejected.get(r.event_id) for r in unique}

    async def _current_state(self, conn: AsyncConnection, rows: Sequence[EventRow]) -> None:
        for source, table, types in self._current_state_tables:
            mine = [r for r in rows if r.source == source]
            if mine:
                await self.postgres.upsert_current_state(conn, table, types, mine)
