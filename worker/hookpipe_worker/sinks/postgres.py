"""The Postgres (Supabase) sink: one statement per batch, inside the batch's transaction.

Supavisor's transaction mode (Supabase's serverless pooler) allows no prepared statements and no
session state, so the pool runs with ``prepare_threshold=None`` and each batch is exactly one
transaction. Rows are inserted in event-id order: concurrent batches that lock the same keys in
opposite orders deadlock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import psycopg
from hookpipe.sources import CurrentStateSpec
from psycopg import AsyncConnection, sql
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from hookpipe_worker.errors import RowRejected, SinkUnavailable, WorkerError
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

# psycopg_pool retries a failed connection with a delay that doubles without a cap until its
# reconnect_timeout (default 300 s): after a 60 s outage its next try can be a minute away, and
# every push meanwhile is answered 503 although Postgres is back. Giving up after 10 s instead
# makes the next checkout start a fresh attempt at once, so the gap between tries stays a few
# seconds (`make bench-recovery`, docs/benchmarks.md).
RECONNECT_TIMEOUT_SECONDS = 10.0


def is_row_error(exc: BaseException) -> bool:
    """Data exceptions (SQLSTATE class 22) and integrity violations (23) belong to the row's values:
    retrying cannot fix them. Everything else (connections, deadlocks, a missing table during a
    deploy) may succeed later."""
    return isinstance(exc, psycopg.DataError | psycopg.IntegrityError)


def create_pool(
    conninfo: str,
    *,
    min_size: int,
    max_size: int,
    timeout: float,
    sslmode: str | None = None,
    sslrootcert: str | None = None,
    reconnect_timeout: float = RECONNECT_TIMEOUT_SECONDS,
) -> AsyncConnectionPool:
    tls = {k: v for k, v in {"sslmode": sslmode, "sslrootcert": sslrootcert}.items() if v}
    return AsyncConnectionPool(
        conninfo,
        min_size=min_size,
        max_size=max_size,
        timeout=timeout,
        open=False,
        reconnect_timeout=reconnect_timeout,
        # No prepared statements: Supavisor's transaction mode hands each transaction to any
        # server connection, where a statement prepared on another one does not exist.
        kwargs={"prepare_threshold": None, "autocommit": False, **tls},
        name="hookpipe-worker",
    )


class PostgresSink:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def insert(
        self, conn: AsyncConnection, rows: Sequence[EventRow]
    ) -> tuple[set[str], dict[str, WorkerError]]:
        """Insert ``rows`` (sorted by id) in ``conn``'s open transaction.

        Returns the ids this call inserted (not those already present) and, per row that did not
        go in, why: :class:`RowRejected` for its values (dead-lettered), :class:`SinkUnavailable`
        for anything else a statement raised on it alone (a trigger, a lock timeout: retried).
        When the batch's statement fails, each row is tried alone under a savepoint, so one row's
        failure never holds back its batch-mates. Raises when the connection itself is lost.
        """
        try:
            async with conn.transaction():
                return await self._insert(conn, rows), {}
        except psycopg.Error as exc:
            if conn.broken:
                raise
            if len(rows) == 1:
                return set(), {rows[0].event_id: _row_failure(exc)}
        inserted: set[str] = set()
        failed: dict[str, WorkerError] = {}
        for row in rows:
            try:
                async with conn.transaction():
                    inserted |= await self._insert(conn, [row])
            except psycopg.Error as exc:
                if conn.broken:
                    raise
                failed[row.event_id] = _row_failure(exc)
        return inserted, failed

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

    async def upsert_current_state(
        self,
        conn: AsyncConnection,
        spec: CurrentStateSpec,
        types: Mapping[str, str],
        rows: Sequence[EventRow],
    ) -> None:
        """Move each key's row forward to its newest event among ``rows``, never backwards."""
        latest: dict[Any, tuple[tuple[datetime, str], EventRow]] = {}
        for row in rows:
            key = row.columns.get(spec.key)
            if key is None:
                continue
            version = (row.columns.get(spec.version) or row.received_at, row.event_id)
            if key not in latest or latest[key][0] < version:
                latest[key] = (version, row)
        if not latest:
            return
        ordered = [latest[k] for k in sorted(latest)]  # lock keys in one order: no deadlocks
        statement, params = current_state_upsert(spec, types, ordered)
        async with conn.cursor() as cur:
            await cur.execute(statement, params)

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


_PG_TYPES = {
    "string": "text",
    "integer": "bigint",
    "numeric": "numeric",
    "timestamp": "timestamptz",
}


def current_state_upsert(
    spec: CurrentStateSpec,
    types: Mapping[str, str],
    latest: Sequence[tuple[tuple[datetime, str], EventRow]],
) -> tuple[sql.Composed, list[list[Any]]]:
    """One INSERT ... ON CONFLICT DO UPDATE for the newest event per key.

    The ``WHERE`` makes the update monotonic: a row changes only when the incoming (version,
    event id) is greater than the stored one, whatever order events arrive in.
    """
    schema, table = spec.table.split(".")
    target = sql.Identifier(schema, table)
    names = [spec.key, *spec.columns, spec.version, "event_id"]
    pg_types = [
        _PG_TYPES[types[spec.key]],
        *(_PG_TYPES[types[c]] for c in spec.columns),
        "timestamptz",
        "text",
    ]
    params: list[list[Any]] = [
        [row.columns[spec.key] for _, row in latest],
        *([row.columns.get(c) for _, row in latest] for c in spec.columns),
        [version for (version, _), _ in latest],
        [event_id for (_, event_id), _ in latest],
    ]
    columns = sql.SQL(", ").join(sql.Identifier(n) for n in names)
    arrays = sql.SQL(", ").join(
        sql.SQL("%s::{}[]").format(sql.SQL(t))
        for t in pg_types  # types from a fixed table
    )
    updates = sql.SQL(", ").join(
        sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(n)) for n in names[1:]
    )
    version = sql.Identifier(spec.version)
    statement = sql.SQL(
        "INSERT INTO {target} ({columns}) SELECT * FROM unnest({arrays}) "
        "ON CONFLICT ({key}) DO UPDATE SET {updates}, updated_at = now() "
        "WHERE ({target}.{version}, {target}.event_id) < (EXCLUDED.{version}, EXCLUDED.event_id)"
    ).format(
        target=target,
        columns=columns,
        arrays=arrays,
        key=sql.Identifier(spec.key),
        updates=updates,
        version=version,
    )
    return statement, params


def _row_failure(exc: psycopg.Error) -> WorkerError:
    return RowRejected("postgres", _describe(exc)) if is_row_error(exc) else unavailable(exc)


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
