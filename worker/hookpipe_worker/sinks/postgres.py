"""The Postgres (Supabase) sink: one statement per batch, inside the batch's transaction.

Supavisor's transaction mode (Supabase's serverless pooler) allows no prepared statements and no
session state, so the pool runs with ``prepare_threshold=None`` and each batch is exactly one
transaction. Rows are inserted in event-id order: concurrent batches that lock the same keys in
opposite orders deadlock.
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from hookpipe_worker.errors import RowRejected, SinkUnavailable
from hookpipe_worker.rows import EventRow

INSERT_EVENTS = """
INSERT INTO hookpipe.events
    (event_id, source, event_type, received_at, content_type, payload, pubsub_message_id)
SELECT * FROM unnest(
    %s::text[], %s::text[], %s::text[], %s::timestamptz[], %s::text[], %s::text[]::jsonb[],
    %s::text[])
ON CONFLICT (event_id) DO NOTHING
RETURNING event_id
"""

DELETE_EVENTS = "DELETE FROM hookpipe.events WHERE event_id = ANY(%s::text[])"


def is_row_error(exc: BaseException) -> bool:
    """Data exceptions (SQLSTATE class 22) and integrity violations (23) belong to the row's values:
    retrying cannot fix them. Everything else (connections, deadlocks, a missing table during a
    deploy) may succeed later."""
    return isinstance(exc, psycopg.DataError | psycopg.IntegrityError)


def create_pool(
    conninfo: str, *, min_size: int, max_size: int, timeout: float
) -> AsyncConnectionPool:
    return AsyncConnectionPool(
        conninfo,
        min_size=min_size,
        max_size=max_size,
        timeout=timeout,
        open=False,
        # No prepared statements: Supavisor's transaction mode hands each transaction to any
        # server connection, where a statement prepared on another one does not exist.
        kwargs={"prepare_threshold": None, "autocommit": False},
        name="hookpipe-worker",
    )


class PostgresSink:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def insert(
        self, conn: AsyncConnection, rows: Sequence[EventRow]
    ) -> tuple[set[str], dict[str, RowRejected]]:
        """Insert ``rows`` (sorted by id) in ``conn``'s open transaction.

        Returns the ids this call inserted (not those already present) and the rows Postgres
        refused for their values, isolated with savepoints so batch-mates still go in.
        """
        try:
            async with conn.transaction():
                return await self._insert(conn, rows), {}
        except psycopg.Error as exc:
            if not is_row_error(exc):
                raise
            if len(rows) == 1:
                return set(), {rows[0].event_id: RowRejected("postgres", _describe(exc))}
        inserted: set[str] = set()
        rejected: dict[str, RowRejected] = {}
        for row in rows:
            try:
                async with conn.transaction():
                    inserted |= await self._insert(conn, [row])
            except psycopg.Error as exc:
                if not is_row_error(exc):
                    raise
                rejected[row.event_id] = RowRejected("postgres", _describe(exc))
        return inserted, rejected

    async def _insert(self, conn: AsyncConnection, rows: Sequence[EventRow]) -> set[str]:
        async with conn.cursor() as cur:
            await cur.execute(
                INSERT_EVENTS,
                (
                    [r.event_id for r in rows],
                    [r.source for r in rows],
                    [r.event_type for r in rows],
                    [r.received_at for r in rows],
                    [r.content_type for r in rows],
                    [r.payload_json for r in rows],
                    [r.pubsub_message_id for r in rows],
                ),
            )
            return {str(record[0]) for record in await cur.fetchall()}

    async def delete(self, conn: AsyncConnection, event_ids: Sequence[str]) -> None:
        """Take back rows this transaction inserted whose BigQuery write was refused."""
        async with conn.cursor() as cur:
            await cur.execute(DELETE_EVENTS, (list(event_ids),))

    async def ready(self) -> bool:
        try:
            async with self.pool.connection(timeout=2.0) as conn:
                await conn.execute("SELECT 1")
        except (psycopg.Error, PoolTimeout):
            return False
        return True


def _describe(exc: psycopg.Error) -> str:
    state = f" (SQLSTATE {exc.sqlstate})" if exc.sqlstate else ""
    first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"{first_line}{state}"


def unavailable(exc: BaseException) -> SinkUnavailable:
    if isinstance(exc, PoolTimeout):
        return SinkUnavailable("postgres: no connection available in time (pool timeout)")
    return SinkUnavailable(
        f"postgres: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    )
