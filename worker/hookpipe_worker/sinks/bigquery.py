"""The BigQuery sink on insertAll (``insert_rows_json``) with row ids, into the raw events table:
the fallback path (``HOOKPIPE_BIGQUERY_WRITE_API=insert_all``); the default is the Storage Write
API (``sinks/storage_write.py``; docs/delivery.md says why). Both use ``requests`` below.

Row ids (one per copy of an event) make BigQuery drop most duplicate inserts (best-effort, ~1
minute); the ``events`` view de-duplicates the rest, so readers see each event once.

insertAll refuses a request over 10 MB whole, and a batch of 500 rows can be far larger than its
``batch_max_bytes`` once JSON-escaped (non-ASCII text triples), so a batch is sent as as many
requests as keep each under ``MAX_INSERT_ALL_BYTES`` (rows that could not fit even alone are
marked before they get here: ``hookpipe_worker.rows.fit_bigquery``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from google.api_core.exceptions import GoogleAPIError
from google.api_core.retry import Retry
from google.cloud import bigquery
from hookpipe.errors import error_class
from requests.exceptions import RequestException

from hookpipe_worker.errors import RowRejected, SinkUnavailable
from hookpipe_worker.rows import MAX_INSERT_ALL_BYTES, EventRow, bigquery_row, row_id

# What an insertAll request holds besides its rows: {"rows": [...], "skipInvalidRows": ...}.
REQUEST_OVERHEAD_BYTES = 1024
# BigQuery's recommendation for insertAll (its limit is 50,000).
MAX_ROWS_PER_REQUEST = 500
# What the BigQuery client raises when a request does not get through: the API, the HTTP
# transport, the network.
BIGQUERY_ERRORS = (GoogleAPIError, RequestException, OSError)


class InsertAll:
    """insertAll into one table, the one way the worker calls it (the events' raw table and the
    archive's): a retry bounded by what a push can afford, and the library's errors translated.
    Synchronous: call it in a thread."""

    def __init__(
        self, client: bigquery.Client, table: str, timeout_seconds: float, label: str = "bigquery"
    ) -> None:
        self.client = client
        self.table = table
        self._label = label
        self._timeout = timeout_seconds
        # The library's default retry runs for up to 10 minutes; a push request has far less.
        self._retry = Retry(initial=0.1, maximum=1.0, multiplier=2.0, timeout=timeout_seconds)

    def send(self, records: Sequence[dict[str, Any]], row_ids: Sequence[str]) -> list[Any]:
        """One request; the per-row errors BigQuery answered, or :class:`SinkUnavailable` when
        the request as a whole failed."""
        try:
            return list(
                self.client.insert_rows_json(
                    self.table,
                    records,
                    row_ids=row_ids,
                    # Valid rows are written even when a batch-mate is invalid.
                    skip_invalid_rows=True,
                    retry=self._retry,
                    timeout=self._timeout,
                )
            )
        except BIGQUERY_ERRORS as exc:
            raise SinkUnavailable(f"{self._label}: {error_class(exc)}: {exc}") from None


class BigQuerySink:
    """The :class:`~hookpipe_worker.ports.RowLog` port on BigQuery's raw events table."""

    def __init__(self, client: bigquery.Client, table: str, timeout_seconds: float) -> None:
        self._insert_all = InsertAll(client, table, timeout_seconds)

    async def insert(self, rows: Sequence[EventRow]) -> dict[str, RowRejected]:
        """Insert ``rows``; return those BigQuery refused for their values.

        Raises :class:`SinkUnavailable` when the request as a whole failed (nothing or an unknown
        part was written: the batch is retried and row ids plus the view absorb any duplicate).
        """
        if not rows:
            return {}
        errors = await asyncio.to_thread(self._insert, rows, datetime.now(UTC))
        rejected: dict[str, RowRejected] = {}
        for entry in errors:
            index = entry.get("index")
            if not isinstance(index, int) or not 0 <= index < len(rows):
                raise SinkUnavailable(f"bigquery: unexpected insert error {entry!r}")
            details = entry.get("errors") or [{}]
            reasons = {str(d.get("reason", "")) for d in details}
            if reasons <= {"invalid"}:
                message = "; ".join(
                    f"{d.get('location', '')}: {d.get('message', '')}".strip(": ") for d in details
                )
                rejected[rows[index].event_id] = RowRejected("bigquery", message)
            else:
                raise SinkUnavailable(f"bigquery: row {index} not written: {sorted(reasons)}")
        return rejected

    def _insert(self, rows: Sequence[EventRow], now: datetime) -> list[dict[str, Any]]:
        """Every row in as few requests as keep each under the size limit; the errors of all of
        them, with ``index`` into ``rows``."""
        records = [bigquery_row(r, now) for r in rows]
        sizes = [
            len(json.dumps({"insertId": row_id(r), "json": rec}))
            for r, rec in zip(rows, records, strict=True)
        ]
        errors: list[dict[str, Any]] = []
        for start, end in requests(sizes):
            if sizes[start] > MAX_INSERT_ALL_BYTES:  # alone, and still too large: refused alone
                message = f"{sizes[start]:,} bytes, over the {MAX_INSERT_ALL_BYTES:,}-byte limit"
                errors.append(
                    {"index": start, "errors": [{"reason": "invalid", "message": message}]}
                )
                continue
            for entry in self._insert_all.send(
                records[start:end], [row_id(r) for r in rows[start:end]]
            ):
                index = entry.get("index")
                errors.append(
                    {**entry, "index": start + index if isinstance(index, int) else index}
                )
        return errors


def requests(sizes: Sequence[int]) -> list[tuple[int, int]]:
    """Split rows of these serialized ``sizes`` into consecutive requests, as ``(start, end)``
    slices, each under ``MAX_INSERT_ALL_BYTES`` and ``MAX_ROWS_PER_REQUEST`` (a row larger
    than the limit gets a slice of its own, so that it fails alone)."""
    slices: list[tuple[int, int]] = []
    start, total = 0, REQUEST_OVERHEAD_BYTES
    for i, size in enumerate(sizes):
        full = i - start >= MAX_ROWS_PER_REQUEST or total + size + 1 > MAX_INSERT_ALL_BYTES
        if i > start and full:
            slices.append((start, i))
            start, total = i, REQUEST_OVERHEAD_BYTES
        total += size + 1  # the comma between rows
    if sizes:
        slices.append((start, len(sizes)))
    return slices
