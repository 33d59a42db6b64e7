"""The dead-letter archive's adapter: every message on the dead-letter topic, kept in Postgres and
BigQuery.

The subscription ``hookpipe-dead-letter-archive`` pushes each dead letter to the worker's archive
endpoint, whoever put it there: the worker (a permanent failure, with its ``hookpipe-*`` reason)
or Pub/Sub (after the maximum delivery attempts, with its ``CloudPubSubDeadLetter*`` attributes).
Each is written to ``hookpipe.dead_letters`` in both sinks, keyed by its message id on the
dead-letter topic, so a redelivered push adds nothing to Postgres (``ON CONFLICT DO NOTHING``);
BigQuery's copy is written after Postgres's and is at-least-once (an append whose answer was lost
may land twice; with insertAll, row ids drop most such repeats), so its readers count a dead letter
by ``dead_letter_id``. The push is answered 204 only when both hold it; otherwise Pub/Sub retries
it. What the
record holds is decided without I/O (:func:`hookpipe_worker.dead_letters.archive_record`).
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from google.cloud import bigquery
from hookpipe.deadletters import timestamp
from psycopg_pool import AsyncConnectionPool

from hookpipe_worker.dead_letters import ArchivedDeadLetter
from hookpipe_worker.errors import SinkUnavailable
from hookpipe_worker.rows import MAX_INSERT_ALL_BYTES
from hookpipe_worker.sinks.bigquery import InsertAll
from hookpipe_worker.sinks.postgres import POSTGRES_ERRORS, unavailable
from hookpipe_worker.sinks.storage_write import TableWriter


def bigquery_archive_row(record: ArchivedDeadLetter, now: datetime) -> dict[str, Any]:
    """The record as BigQuery's ``dead_letters`` holds it. Its ``data`` is left out (NULL) when the
    row would be too large for insertAll; Postgres's copy, which replay reads, always has it."""
    row = _bigquery_archive_row(record, now)
    if len(json.dumps(row)) > MAX_INSERT_ALL_BYTES:
        row["data"] = None
    return row


def _bigquery_archive_row(record: ArchivedDeadLetter, now: datetime) -> dict[str, Any]:
    return {
        "dead_letter_id": record.dead_letter_id,
        "event_id": record.event_id,
        "source": record.source,
        "error_class": record.error_class,
        "reason": record.reason,
        "delivery_attempts": record.delivery_attempts,
        "first_failure_time": timestamp(record.first_failure_time)
        if record.first_failure_time
        else None,
        "dead_lettered_at": timestamp(record.dead_lettered_at),
        "original_message_id": record.original_message_id,
        "attributes": json.dumps(record.attributes, ensure_ascii=False),
        "data": base64.b64encode(record.data).decode(),
        "archived_at": timestamp(now),
    }


INSERT_DEAD_LETTER = """
INSERT INTO hookpipe.dead_letters
    (dead_letter_id, event_id, source, error_class, reason, delivery_attempts,
     first_failure_time, dead_lettered_at, original_message_id, attributes, data)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s)
ON CONFLICT (dead_letter_id) DO NOTHING
"""


# Writes one archive row to BigQuery (the record, its row id), or raises SinkUnavailable.
type WriteRow = Callable[[Mapping[str, Any], str], Awaitable[None]]


def storage_write_rows(writer: TableWriter) -> WriteRow:
    """Archive rows appended to the ``dead_letters`` table's default stream."""

    async def write(row: Mapping[str, Any], row_id: str) -> None:
        refused = await writer.append([row])
        if refused:
            raise SinkUnavailable(f"archive: bigquery refused the row: {refused[0]}"[:500])

    return write


def insert_all_rows(client: bigquery.Client, table: str, timeout_seconds: float) -> WriteRow:
    """Archive rows through insertAll, the dead letter's id as the row id."""
    insert_all = InsertAll(client, table, timeout_seconds, "archive: bigquery")

    async def write(row: Mapping[str, Any], row_id: str) -> None:
        errors = await asyncio.to_thread(insert_all.send, [dict(row)], [row_id])
        if errors:
            raise SinkUnavailable(f"archive: bigquery refused the row: {errors!r}"[:500])

    return write


class DeadLetterArchive:
    """The :class:`~hookpipe_worker.ports.Archive` port on Postgres and BigQuery."""

    def __init__(self, pool: AsyncConnectionPool, write_bigquery: WriteRow) -> None:
        self._pool = pool
        self._write_bigquery = write_bigquery

    async def write(self, record: ArchivedDeadLetter) -> None:
        """Both sinks, or :class:`SinkUnavailable` (the push is retried; writes are idempotent)."""
        try:
            async with self._pool.connection() as conn, conn.transaction():
                await conn.execute(
                    INSERT_DEAD_LETTER,
                    (
                        record.dead_letter_id,
                        record.event_id,
                        record.source,
                        record.error_class,
                        record.reason,
                        record.delivery_attempts,
                        record.first_failure_time,
                        record.dead_lettered_at,
                        record.original_message_id,
                        json.dumps(record.attributes, ensure_ascii=False),
                        record.data,
                    ),
                )
        except POSTGRES_ERRORS as exc:
            raise unavailable(exc, "archive: postgres") from None
        row = bigquery_archive_row(record, datetime.now(UTC))
        await self._write_bigquery(row, record.dead_letter_id)
