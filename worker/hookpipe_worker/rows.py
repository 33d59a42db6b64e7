"""Map an event to the rows the sinks store. Pure.

*Mark, don't refuse* (hookpipe.problems): an event of a configured source always becomes a row.

* A body that does not normalize (ingest marked it, or it fails here) becomes a row with no
  payload, the original bytes in ``body`` and the problem; it does not touch current state.
* Text or numbers the sinks cannot store are replaced (``hookpipe.problems.storable``) and marked.
* A typed column whose value does not convert is NULL and marked; the payload stays complete.
* A current-state key over ``MAX_KEY_BYTES`` cannot be indexed: marked, current state untouched.
* A current-state version more than ``MAX_VERSION_AHEAD`` ahead of ingest's receipt time would
  freeze the key's state row (nothing later could be newer): it is marked as unconvertible.
* A row too large for BigQuery's insertAll (``MAX_INSERT_ALL_BYTES`` serialized) goes to BigQuery
  without its payload and body, marked; Postgres keeps them. (A 9 MiB webhook can grow to three
  times that as JSON-escaped text.)

Only an event of a source this worker does not know raises (:class:`UnknownSource`).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from hookpipe.errors import PayloadError
from hookpipe.event import WebhookEvent, rfc3339
from hookpipe.mapping import map_columns
from hookpipe.payload import normalize
from hookpipe.problems import BODY, MAX_PROBLEMS, Problem, bounded, clip, storable
from hookpipe.sources import SourceConfig

from hookpipe_worker.delivery import Delivery
from hookpipe_worker.errors import UnknownSource

MAX_VERSION_AHEAD = timedelta(days=1)
# Postgres refuses a btree entry over ~2.7 KB (SQLSTATE 54000): a longer current-state key could
# never be stored, so it is marked instead.
MAX_KEY_BYTES = 1024
# BigQuery refuses a request (an insertAll or an append), or a row, over 10 MB. The sinks keep each
# request under this (sinks/bigquery.py, requests), so a row larger than this cannot be sent
# whole. Rows are measured as insertAll's JSON, never smaller than their protobuf encoding.
MAX_INSERT_ALL_BYTES = 9_000_000
# Escaped as JSON with ASCII output, as the BigQuery client sends it, one character becomes at most
# 12 bytes (an astral code point as two \uXXXX escapes); base64 makes 3 bytes 4.
_MAX_ESCAPED_BYTES_PER_CHAR = 12


@dataclass(frozen=True, slots=True)
class EventRow:
    event_id: str
    source: str
    event_type: str
    received_at: datetime
    content_type: str
    payload_json: (
        str | None
    )  # the normalized body, serialized once for both sinks; None: unparsable
    pubsub_message_id: str | None
    columns: dict[str, Any] = field(default_factory=dict)  # typed, from the source's mapping
    problems: tuple[Problem, ...] = ()
    unconverted: frozenset[str] = frozenset()  # columns NULL because their value did not convert
    body: bytes | None = None  # the original bytes, kept when there is no payload
    # False: payload and body are too large for a BigQuery row; only Postgres holds them (marked).
    payload_in_bigquery: bool = True
    origin: str = "webhook"  # how hookpipe learnt of it: a webhook, or a reconcile

    @property
    def size(self) -> int:
        """Roughly what the row weighs in a batch (the batcher's ``max_bytes``)."""
        problems = sum(len(p.value or "") + len(p.reason) + len(p.field) for p in self.problems)
        return len(self.payload_json or "") + len(self.body or b"") + problems + 256

    @property
    def problems_json(self) -> str | None:
        if not self.problems:
            return None
        return json.dumps([p.as_json() for p in self.problems], ensure_ascii=False)


def build_row(
    event: WebhookEvent, delivery: Delivery, sources: Mapping[str, SourceConfig]
) -> EventRow:
    """Raises :class:`UnknownSource` when the event's source is not configured; everything else
    that cannot be understood is marked in the row."""
    config = sources.get(event.source)
    if config is None:
        raise UnknownSource(f"no source {event.source!r} is configured in this worker")
    base = EventRow(
        event_id=event.id,
        source=event.source,
        event_type=event.type,
        received_at=event.time,
        content_type=event.content_type,
        payload_json=None,
        pubsub_message_id=delivery.message_id,
        origin=event.origin,
    )
    problem = event.problem
    if problem is None:
        try:
            payload = normalize(event.data, event.content_type)
        except PayloadError as exc:
            problem = str(exc)
    if problem is not None:
        return fit_bigquery(
            replace(base, problems=(Problem(BODY, None, clip(problem)),), body=event.data)
        )
    payload, problems = storable(payload)
    mapped = map_columns(config.columns, payload)
    columns, column_problems = dict(mapped.values), dict(mapped.problems)
    state = config.current_state
    if state is not None:
        version = columns.get(state.version)
        if isinstance(version, datetime) and version > event.time + MAX_VERSION_AHEAD:
            spec = config.columns[state.version]
            columns[state.version] = None
            column_problems[state.version] = Problem(
                spec.field,
                clip(payload.get(spec.field)),
                f"more than {MAX_VERSION_AHEAD.days} day ahead of the time ingest received it",
            )
        key = columns.get(state.key)
        if isinstance(key, str) and len(key.encode("utf-8", "replace")) > MAX_KEY_BYTES:
            spec = config.columns[state.key]
            columns[state.key] = None
            column_problems[state.key] = Problem(
                spec.field, clip(key), f"over {MAX_KEY_BYTES} bytes: too long to key current state"
            )
    return fit_bigquery(
        replace(
            base,
            payload_json=json.dumps(payload, ensure_ascii=False, separators=(",", ":")),
            columns=columns,
            # The columns' problems always listed: they are few, and say why a column is NULL.
            problems=(
                *bounded(problems, problems.more, MAX_PROBLEMS - len(column_problems)),
                *column_problems.values(),
            ),
            unconverted=frozenset(column_problems),
        )
    )


def fit_bigquery(row: EventRow) -> EventRow:
    """``row``, or, when it is too large for a BigQuery row, ``row`` marked to go to BigQuery
    without its payload and body."""
    if size_bound(row) <= MAX_INSERT_ALL_BYTES:  # nearly every row: no need to serialize it
        return row
    size = bigquery_row_bytes(row)
    if size <= MAX_INSERT_ALL_BYTES:
        return row
    reason = (
        f"the row is {size:,} bytes as BigQuery receives it, over its {MAX_INSERT_ALL_BYTES:,}"
        "-byte limit: the payload and body are stored in Postgres only"
    )
    return replace(
        row, problems=(*row.problems, Problem(BODY, None, reason)), payload_in_bigquery=False
    )


def size_bound(row: EventRow) -> int:
    """At least the row's serialized size (:func:`bigquery_row_bytes`), cheaply."""
    text = [row.payload_json or "", row.problems_json or "", row.event_id, row.source]
    text += [row.event_type, row.content_type, row.pubsub_message_id or "", row.origin]
    text += [str(v) for v in row.columns.values()]
    chars = sum(len(t) for t in text)
    return _MAX_ESCAPED_BYTES_PER_CHAR * chars + 4 * len(row.body or b"") // 3 + 4096


def row_id(row: EventRow) -> str:
    """BigQuery's insertAll row id for ``row``: one per copy of an event, not per event id.

    A redelivered message (same receipt time, same message id) is the same copy, and its repeat
    is dropped within insertAll's de-duplication window. Two copies that differ (another body
    with the same id, or the same body published twice by the spool's drainer) both reach the
    table, and the ``events`` view keeps the one ingest received first, as Postgres does: a row id
    of the event id alone kept whichever was *inserted* first, possibly a body Postgres never
    committed."""
    copy = f"{rfc3339(row.received_at)}\0{row.pubsub_message_id or ''}"
    return f"{row.event_id}:{hashlib.sha256(copy.encode()).hexdigest()[:16]}"


def bigquery_row_bytes(row: EventRow) -> int:
    """What ``row`` adds to an insertAll request: its record and row id, serialized as the client
    sends them (``json.dumps``: ASCII, so characters are bytes)."""
    record = bigquery_row(row, row.received_at)
    # inserted_at is the insert's own time: allow for its longest form.
    return len(json.dumps({"insertId": row_id(row), "json": record})) + 16


def _bigquery_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, Decimal):
        return str(value)  # NUMERIC takes a string: no float rounding
    return value


def bigquery_row(row: EventRow, inserted_at: datetime) -> dict[str, Any]:
    record = {name: _bigquery_value(value) for name, value in row.columns.items()}
    record.update(
        {
            "event_id": row.event_id,
            "source": row.source,
            "event_type": row.event_type,
            "received_at": rfc3339(row.received_at),
            "inserted_at": rfc3339(inserted_at),
            "content_type": row.content_type,
            # JSON columns take a JSON string in insertAll.
            "payload": row.payload_json if row.payload_in_bigquery else None,
            "pubsub_message_id": row.pubsub_message_id,
            "problems": row.problems_json,
            "origin": row.origin,
            # BYTES columns take base64 in insertAll.
            "body": base64.b64encode(row.body).decode()
            if row.body is not None and row.payload_in_bigquery
            else None,
        }
    )
    return record
