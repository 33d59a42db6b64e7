"""The dead-letter archive: every message on the dead-letter topic, kept in Postgres and BigQuery.

The subscription ``hookpipe-dead-letter-archive`` pushes each dead letter to the worker's archive
endpoint, whoever put it there: the worker (a permanent failure, with its ``hookpipe-*`` reason)
or Pub/Sub (after the maximum delivery attempts, with its ``CloudPubSubDeadLetter*`` attributes).
Each is written to ``hookpipe.dead_letters`` in both sinks, keyed by its message id on the
dead-letter topic, so a redelivered push adds nothing (``ON CONFLICT DO NOTHING``, BigQuery row
ids). The push is answered 204 only when both hold it; otherwise Pub/Sub retries it.

:func:`archive_record` is pure; :class:`DeadLetterArchive` is the adapter.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import psycopg
from google.api_core.exceptions import GoogleAPIError
from google.api_core.retry import Retry
from google.cloud import bigquery
from hookpipe.deadletters import (
    FIRST_FAILURE_TIME,
    ORIGINAL_MESSAGE_ID,
    DeadLetter,
    parse_timestamp,
    timestamp,
)
from hookpipe.event import CE_ID
from hookpipe.problems import storable
from hookpipe.text import is_ascii_digits
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from requests.exceptions import RequestException

from hookpipe_worker.delivery import Delivery
from hookpipe_worker.errors import SinkUnavailable
from hookpipe_worker.rows import MAX_INSERT_ALL_BYTES


@dataclass(frozen=True, slots=True)
class ArchivedDeadLetter:
    dead_letter_id: str
    event_id: str | None
    source: str | None
    error_class: str
    reason: str
    delivery_attempts: int | None
    first_failure_time: datetime | None
    dead_lettered_at: datetime
    original_message_id: str | None
    attributes: dict[str, str]
    data: bytes


def _time(text: str | None) -> datetime | None:
    try:
        return parse_timestamp(text) if text else None
    except ValueError:
        return None


def _int(text: str | None) -> int | None:
    return int(text) if text and is_ascii_digits(text) and len(text) < 10 else None


def archive_record(delivery: Delivery, now: datetime) -> ArchivedDeadLetter:
    """What the archive stores for one pushed dead letter. Pure; never raises on content."""
    attributes = {k: str(v) for k, v in storable(dict(delivery.attributes))[0].items()}
    dead_lettered_at = _time(delivery.publish_time) or now
    # Without a message id (an unwrapped push), the content identifies the dead letter.
    dead_letter_id = (
        delivery.message_id
        or hashlib.sha256(
            delivery.data + json.dumps(attributes, sort_keys=True).encode()
        ).hexdigest()
    )
    letter = DeadLetter(dead_letter_id, dead_lettered_at, delivery.data, attributes)
    source = letter.source
    return ArchivedDeadLetter(
        dead_letter_id=dead_letter_id,
        event_id=attributes.get(CE_ID),
        source=None if source == "(none)" else source,
        error_class=letter.reason,
        reason=letter.message or letter.reason,
        delivery_attempts=_int(
            attributes.get("CloudPubSubDeadLetterSourceDeliveryCount")
            or attributes.get("hookpipe-delivery-attempt")
        ),
        first_failure_time=_time(attributes.get(FIRST_FAILURE_TIME)) or dead_lettered_at,
        dead_lettered_at=dead_lettered_at,
        original_message_id=attributes.get(ORIGINAL_MESSAGE_ID),
        attributes=attributes,
        data=delivery.data,
    )


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


class ArchiveSink(Protocol):
    async def write(self, record: ArchivedDeadLetter) -> None: ...


class DeadLetterArchive:
    def __init__(
        self,
        pool: AsyncConnectionPool,
        client: bigquery.Client,
        table: str,
        timeout_seconds: float,
    ) -> None:
        self._pool = pool
        self._client = client
        self._table = table
        self._timeout = timeout_seconds
        self._retry = Retry(initial=0.1, maximum=1.0, multiplier=2.0, timeout=timeout_seconds)

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
        except (psycopg.Error, PoolTimeout) as exc:
            raise SinkUnavailable(f"archive: postgres: {type(exc).__name__}: {exc}") from None
        try:
            errors = await asyncio.to_thread(
                self._client.insert_rows_json,
                self._table,
                [bigquery_archive_row(record, datetime.now(UTC))],
                row_ids=[record.dead_letter_id],
                retry=self._retry,
                timeout=self._timeout,
            )
        except (GoogleAPIError, RequestException, OSError) as exc:
            raise SinkUnavailable(f"archive: bigquery: {type(exc).__name__}") from None
        if errors:
            raise SinkUnavailable(f"archive: bigquery refused the row: {errors!r}"[:500])
