"""The BigQuery sink: insertAll (``insert_rows_json``) with row ids, into the raw events table.

Row ids (the event id) make BigQuery drop most duplicate inserts (best-effort, ~1 minute); the
``events`` view de-duplicates the rest, so readers see each event once. docs/delivery.md says why
insertAll rather than the Storage Write API.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

from google.api_core.exceptions import GoogleAPIError
from google.api_core.retry import Retry
from google.cloud import bigquery
from requests.exceptions import RequestException

from hookpipe_worker.errors import RowRejected, SinkUnavailable
from hookpipe_worker.rows import EventRow, bigquery_row


class BigQuerySink:
    def __init__(self, client: bigquery.Client, table: str, timeout_seconds: float) -> None:
        self.client = client
        self.table = table
        self._timeout = timeout_seconds
        # The library's default retry runs for up to 10 minutes; a push request has far less.
        self._retry = Retry(initial=0.1, maximum=1.0, multiplier=2.0, timeout=timeout_seconds)

    async def insert(self, rows: Sequence[EventRow]) -> dict[str, RowRejected]:
        """Insert ``rows``; return those BigQuery refused for their values.

        Raises :class:`SinkUnavailable` when the request as a whole failed (nothing or an unknown
        part was written: the batch is retried and row ids plus the view absorb any duplicate).
        """
        if not rows:
            return {}
        now = datetime.now(UTC)
        try:
            errors = await asyncio.to_thread(
                self.client.insert_rows_json,
                self.table,
                [bigquery_row(r, now) for r in rows],
                row_ids=[r.event_id for r in rows],
                # Valid rows are written even when a batch-mate is invalid.
                skip_invalid_rows=True,
                retry=self._retry,
                timeout=self._timeout,
            )
        except (GoogleAPIError, RequestException, OSError) as exc:
            raise SinkUnavailable(f"bigquery: {type(exc).__name__}: {exc}") from None
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
