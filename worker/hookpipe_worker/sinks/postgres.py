"""The Postgres (Supabase) sink: one statement per batch, inside the batch's transaction.

This is the adapter behind the writer's :class:`~hookpipe_worker.writer.EventStore` port, and the
only place psycopg's errors are translated: a lost or refused connection, a restart or a deadlock
becomes :class:`SinkInterrupted` (the writer tries again at once), any other database error
:class:`SinkUnavailable` (answered 503), a row's own bad value :class:`RowRejected`.

Supavisor's transaction mode (Supabase's serverless pooler) allows no prepared statements and no
session state, so the pool runs with ``prepare_threshold=None`` and each batch is exactly one
transaction. Rows are inserted in event-id order: concurrent batches that lock the same keys in
opposite orders deadlock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import psycopg.errors
from hookpipe.errors import error_class
from hookpipe.sources import SourceConfig
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from hookpipe_worker.errors import RowRejected, SinkInterrupted, SinkUnavailable, WorkerError
from hookpipe_worker.rows import EventRow
from hookpipe_worker.sinks.current_state import CurrentStateTable, KeyState, current_state_tables

INSERT_EVENTS = """
INSERT INTO hookpipe.events
    (event_id, source, event_type, received_at, content_type, payload, pubsub_message_id,
     problems, body, origin)
SELECT * FROM unnest(
    %s::text[], %s::text[], %s::text[], %s::timestamptz[], %s::text[], %s::text[]::jsonb[],
    %s::text[], %s::text[]::jsonb[], %s::bytea[], %s::text[])
ON CONFLICT (event_id) DO NOTHING
RETURNING event_id
"""

# The row's fields each statement takes, one array per field, in its parameters' order.
INSERTED = ("event_id", "source", "event_type", "received_at", "content_type", "payload_json",
            "pubsub_message_id", "problems_json", "body", "origin")  # fmt: skip
KEPT = ("event_id", "received_at", "content_type", "payload_json", "pubsub_message_id",
        "problems_json", "body", "origin")  # fmt: skip

DELETE_EVENTS = "DELETE FROM hookpipe.events WHERE event_id = ANY(%s::text[])"

# Two bodies can share an event id (a sender resending an event changed; a failed commit's
# BigQuery copy and another instance's committed one). Both sinks keep the one ingest received
# first, ordered by (received_at, Pub/Sub message id, NULL first): BigQuery's `events` view picks
# it among the copies (infra/bigquery/tables.json), and this moves Postgres's stored row to it.
# A copy BigQuery holds is one whose message is redelivered until it commits, so the two meet.
KEEP_FIRST_RECEIVED = """
UPDATE hookpipe.events AS e
SET received_at = n.received_at, content_type = n.content_type, payload = n.payload,
    pubsub_message_id = n.pubsub_message_id, problems = n.problems, body = n.body,
    origin = n.origin
FROM unnest(
    %s::text[], %s::timestamptz[], %s::text[], %s::text[]::jsonb[], %s::text[],
    %s::text[]::jsonb[], %s::bytea[], %s::text[])
    AS n(event_id, received_at, content_type, payload, pubsub_message_id, problems, body, origin)
WHERE e.event_id = n.event_id
  AND (n.received_at, coalesce(n.pubsub_message_id, ''))
      < (e.received_at, coalesce(e.pubsub_message_id, ''))
"""

# psycopg_pool retries a failed connection with a delay that doubles without a cap until its
# reconnect_timeout (default 300 s): after a 60 s outage its next try can be a minute away, and
# every push meanwhile is answered 503 although Postgres is back. Giving up after 10 s instead
# makes the next checkout start a fresh attempt at once, so the gap between tries stays a few
# seconds (`make bench-recovery`, docs/benchmarks.md).
RECONNECT_TIMEOUT_SECONDS = 10.0

# Failures worth trying again at once on a fresh connection: the connection was lost or refused,
# the server is shutting down (class 57), a deadlock or serialization failure (class 40), no
# connection free in time. Anything else (a missing table mid-deploy, a permission a deploy
# forgot) goes straight back to Pub/Sub.
INTERRUPTIONS = (psycopg.OperationalError, PoolTimeout)
# Anything psycopg or its pool raises: a database error, or no connection in time.
POSTGRES_ERRORS = (psycopg.Error, PoolTimeout)


def is_row_error(exc: BaseException) -> bool:
    """Data exceptions (SQLSTATE class 22), integrity violations (23) and a value over a limit
    (54000: e.g. an index row too large) belong to the row's values: retrying cannot fix them.
    Everything else (connections, deadlocks, a missing table during a deploy) may succeed later."""
    return isinstance(
        exc, psycopg.DataError | psycopg.IntegrityError | psycopg.errors.ProgramLimitExceeded
    )


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
    """The :class:`~hookpipe_worker.ports.EventStore` port on Postgres. ``sources``: those with a
    current-state table get its upsert, built once here rather than per batch. Required, not
    defaulted: a sink built without them would commit every event and never move current state."""

    def __init__(self, pool: AsyncConnectionPool, sources: Mapping[str, SourceConfig]) -> None:
        self.pool = pool
        self.current_state = current_state_tables(sources)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PostgresTransaction]:
        """One transaction on a pooled connection, committed when the block ends without an
        exception and rolled back otherwise; psycopg's errors come out translated."""
        try:
            async with self.pool.connection() as conn, conn.transaction():
                yield PostgresTransaction(conn, self.current_state)
        except INTERRUPTIONS as exc:
            raise interrupted(exc) from exc
        except psycopg.Error as exc:
            raise unavailable(exc) from exc

    async def ready(self) -> bool:
        try:
            async with self.pool.connection(timeout=2.0) as conn:
                await conn.execute("SELECT 1")
        except POSTGRES_ERRORS:
            return False
        return True


class PostgresTransaction:
    """What the writer does inside one batch's transaction."""

    def __init__(
        self, conn: AsyncConnection, current_state: Sequence[CurrentStateTable] = ()
    ) -> None:
        self.conn = conn
        self._current_state = current_state

    async def insert(self, rows: Sequence[EventRow]) -> tuple[set[str], dict[str, WorkerError]]:
        """Insert ``rows`` (sorted by id).

        Returns the ids this call inserted (not those already present) and, per row that did not
        go in, why: :class:`RowRejected` for its values (dead-lettered), :class:`SinkUnavailable`
        for anything else a statement raised on it alone (a trigger, a lock timeout: retried).
        When the batch's statement fails, each row is tried alone under a savepoint, so one row's
        failure never holds back its batch-mates. Raises when the connection itself is lost.
        """
        conn = self.conn
        # Any exception, not only psycopg's: a value psycopg cannot even encode raises
        # UnicodeEncodeError, and must fail its own row, not the batch.
        try:
            async with conn.transaction():
                return await self._insert(rows), {}
        except Exception as exc:
            if conn.broken:
                raise
            if len(rows) == 1:
                return set(), {rows[0].event_id: _row_failure(exc)}
        inserted: set[str] = set()
        failed: dict[str, WorkerError] = {}
        for row in rows:
            try:
                async with conn.transaction():
                    inserted |= await self._insert([row])
            except Exception as exc:
                if conn.broken:
                    raise
                failed[row.event_id] = _row_failure(exc)
        return inserted, failed

    async def _insert(self, rows: Sequence[EventRow]) -> set[str]:
        async with self.conn.cursor() as cur:
            await cur.execute(INSERT_EVENTS, _arrays(rows, INSERTED))
            return {str(record[0]) for record in await cur.fetchall()}

    async def upsert_current_state(self, rows: Sequence[EventRow]) -> dict[str, dict[str, str]]:
        """Fold ``rows`` into each source's current-state table; per source, per event id of a
        key Postgres refused, why (:meth:`upsert_table`)."""
        return {table.source: await self.upsert_table(table, rows) for table in self._current_state}

    async def upsert_table(
        self, table: CurrentStateTable, rows: Sequence[EventRow]
    ) -> dict[str, str]:
        """Fold ``rows`` into ``table`` (:mod:`hookpipe_worker.sinks.current_state`).

        As the events insert: when the batch's statement fails, each key is tried alone under a
        savepoint, so a key whose values Postgres refuses (class 22/23/54) never holds back the
        other keys nor the batch's events. Returns, per event id of a refused key, why its state
        did not move; raises for anything else (the batch is retried).
        """
        states = table.fold(rows)
        if not states:
            return {}
        conn = self.conn
        try:
            async with conn.transaction():
                await self._upsert(table, states)
            return {}
        except Exception:
            if conn.broken:
                raise
        refused: dict[str, str] = {}
        for state in states:
            try:
                async with conn.transaction():
                    await self._upsert(table, [state])
            except Exception as exc:
                if conn.broken or not _is_values_fault(exc):
                    raise
                refused |= _refused(table, rows, state.key, exc)
        return refused

    async def _upsert(self, table: CurrentStateTable, states: Sequence[KeyState]) -> None:
        async with self.conn.cursor() as cur:
            await cur.execute(table.statement, table.params(states))

    async def keep_first_received(self, rows: Sequence[EventRow]) -> None:
        """For ``rows`` already stored (not inserted now), keep whichever copy ingest received
        first (``KEEP_FIRST_RECEIVED``). Called only with rows BigQuery holds."""
        if rows:
            async with self.conn.cursor() as cur:
                await cur.execute(KEEP_FIRST_RECEIVED, _arrays(rows, KEPT))

    async def delete(self, event_ids: Sequence[str]) -> None:
        """Take back rows this transaction inserted whose BigQuery write was refused."""
        async with self.conn.cursor() as cur:
            await cur.execute(DELETE_EVENTS, (list(event_ids),))


def _arrays(rows: Sequence[EventRow], fields: Sequence[str]) -> list[list[Any]]:
    return [[getattr(row, name) for row in rows] for name in fields]


def _is_values_fault(exc: Exception) -> bool:
    return is_row_error(exc) or not isinstance(exc, psycopg.Error)


def _refused(
    table: CurrentStateTable, rows: Sequence[EventRow], key: object, exc: Exception
) -> dict[str, str]:
    reason = _describe(exc)
    return {
        r.event_id: reason
        for r in rows
        if r.source == table.source and r.columns.get(table.spec.key) == key
    }


def _row_failure(exc: Exception) -> WorkerError:
    """Class 22/23 and anything that is not a database error at all (the row's value cannot be
    sent) are the row's own; other database errors are passing."""
    if is_row_error(exc) or not isinstance(exc, psycopg.Error):
        return RowRejected("postgres", _describe(exc))
    return unavailable(exc)


def _describe(exc: Exception) -> str:
    if not isinstance(exc, psycopg.Error):
        return f"{error_class(exc)}: {str(exc)[:200]}"
    state = f" (SQLSTATE {exc.sqlstate})" if exc.sqlstate else ""
    first_line = str(exc).splitlines()[0] if str(exc) else error_class(exc)
    return f"{first_line}{state}"


def _message(exc: BaseException, label: str) -> str:
    if isinstance(exc, PoolTimeout):
        return f"{label}: no connection available in time (pool timeout)"
    return f"{label}: {error_class(exc)}: {str(exc).splitlines()[0] if str(exc) else ''}"


def unavailable(exc: BaseException, label: str = "postgres") -> SinkUnavailable:
    """psycopg's (or the pool's) ``exc`` as the worker's error: answered 503, retried."""
    return SinkUnavailable(_message(exc, label))


def interrupted(exc: BaseException) -> SinkInterrupted:
    return SinkInterrupted(_message(exc, "postgres"))
