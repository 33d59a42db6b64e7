"""insertAll's size limits: a request (and a row) over 10 MB is refused whole, and the emulator does
not enforce that (platform notes), so the limit is played here by a tiny client that does. A batch
is split into requests under the limit; a row too large on its own lands marked, its payload and
body in Postgres only. The same rows land on the real stack in tests/e2e/test_large_rows.py."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from google.api_core.exceptions import BadRequest
from hookpipe.event import WebhookEvent
from hookpipe.problems import BODY, Problem, storable
from hookpipe.sources import load_source_configs
from hookpipe_worker.dead_letters import ArchivedDeadLetter
from hookpipe_worker.delivery import Delivery
from hookpipe_worker.errors import RowRejected
from hookpipe_worker.rows import (
    MAX_INSERT_ALL_BYTES,
    EventRow,
    bigquery_row,
    bigquery_row_bytes,
    build_row,
    size_bound,
)
from hookpipe_worker.sinks.archive import bigquery_archive_row
from hookpipe_worker.sinks.bigquery import MAX_ROWS_PER_REQUEST, BigQuerySink, requests
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.events import lead_row

SOURCES = load_source_configs(Path(__file__).resolve().parents[2] / "infra/sources.toml")
T0 = datetime(2026, 11, 30, 9, tzinfo=UTC)
INSERT_ALL_LIMIT = 10 * 1024 * 1024  # what production BigQuery refuses beyond


class InsertAllWithLimits:
    """``insert_rows_json`` as production BigQuery answers it: a request over 10 MB or 50,000 rows
    is refused whole; a row it finds invalid is refused alone (``refuse``)."""

    def __init__(self, refuse: frozenset[str] = frozenset()) -> None:
        self.refuse = refuse
        self.requests: list[int] = []  # bytes of each request sent
        self.rows: list[str] = []  # event ids written

    def insert_rows_json(
        self, table: str, rows: Sequence[dict[str, Any]], *, row_ids: Sequence[str], **_: Any
    ) -> list[dict[str, Any]]:
        body = {"rows": [{"insertId": i, "json": r} for i, r in zip(row_ids, rows, strict=True)]}
        size = len(json.dumps(body))  # as google-cloud-bigquery sends it
        if size > INSERT_ALL_LIMIT or len(rows) > 50_000:
            raise BadRequest(f"Request payload size exceeds the limit: {size} bytes")
        self.requests.append(size)
        events = [i.partition(":")[0] for i in row_ids]  # a row id is "<event id>:<copy>"
        self.rows += [e for e in events if e not in self.refuse]
        return [
            {"index": n, "errors": [{"reason": "invalid", "message": "no"}]}
            for n, e in enumerate(events)
            if e in self.refuse
        ]


def emoji_row(event_id: str, chars: int) -> EventRow:
    """A row whose payload is ``chars`` emoji: 12 bytes each as the client escapes them."""
    return lead_row(event_id, at=T0, payload_json=json.dumps({"note": "😀" * chars}))


def insert(client: InsertAllWithLimits, rows: list[EventRow]) -> dict[str, RowRejected]:
    sink = BigQuerySink(client, "p.hookpipe.raw_events", 10.0)  # type: ignore[arg-type]
    return asyncio.run(sink.insert(rows))


def test_requests_fill_up_to_the_size_limit_and_the_row_count() -> None:
    half = MAX_INSERT_ALL_BYTES // 2
    assert requests([half - 600, half - 600, 500]) == [(0, 2), (2, 3)]
    assert requests([10] * (MAX_ROWS_PER_REQUEST + 1)) == [(0, 500), (500, 501)]
    assert requests([10, MAX_INSERT_ALL_BYTES * 2, 10]) == [(0, 1), (1, 2), (2, 3)]  # alone
    assert requests([]) == []


def test_a_batch_larger_than_a_request_is_split_and_lands_whole() -> None:
    """~1 MB of emoji per row (3 MB once escaped): a 12-row batch is ~37 MB as one request."""
    rows = [emoji_row(f"e{n:02d}", 260_000) for n in range(12)]
    client = InsertAllWithLimits(refuse=frozenset({"e07"}))

    rejected = insert(client, rows)

    assert len(client.requests) >= 4
    assert max(client.requests) <= INSERT_ALL_LIMIT
    assert sorted(client.rows) == sorted(r.event_id for r in rows if r.event_id != "e07")
    assert list(rejected) == ["e07"]  # the error's index points into the batch, not the request


def test_a_row_too_large_for_bigquery_lands_marked_with_its_payload_in_postgres_only() -> None:
    body = json.dumps({"lp_request_uuid": "L1", "note": "😀" * 800_000}).encode()  # 3.2 MB
    event = WebhookEvent("big", "leadprosper", "t", T0, "application/json", body)

    row = build_row(event, Delivery(data=b"", attributes={}), SOURCES)

    assert row.payload_json is not None
    assert "😀" in row.payload_json  # Postgres keeps all of it
    record = bigquery_row(row, T0)
    assert (record["payload"], record["body"], record["lead_id"]) == (None, None, "L1")
    [problem] = json.loads(record["problems"])
    assert problem["field"] == "(body)"
    assert "Postgres only" in problem["reason"]
    client = InsertAllWithLimits()
    assert insert(client, [row]) == {}
    assert client.rows == ["big"]


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (json.dumps({"note": "x" * 3_000_000}).encode(), "application/json"),  # ASCII: 3 MB
        (b"\xff" * 6_000_000, "application/octet-stream"),  # unparsed: 8 MB as base64
    ],
)
def test_a_large_row_that_fits_keeps_its_payload_in_bigquery(
    body: bytes, content_type: str
) -> None:
    event = WebhookEvent("fits", "leadprosper", "t", T0, content_type, body)
    row = build_row(event, Delivery(data=b"", attributes={}), SOURCES)
    record = bigquery_row(row, T0)
    assert record["payload"] is not None or record["body"] is not None
    assert all("Postgres only" not in p.reason for p in row.problems)
    assert insert(InsertAllWithLimits(), [row]) == {}


def test_a_row_too_large_even_unmarked_fails_alone() -> None:
    """Rows built by the worker are marked before they get here; one that was not still fails
    alone, as a row BigQuery refuses, instead of failing the request its batch-mates are in."""
    rows = [lead_row("small", at=T0), emoji_row("huge", 1_000_000), lead_row("small2", at=T0)]
    client = InsertAllWithLimits()

    rejected = insert(client, rows)

    assert list(rejected) == ["huge"]
    assert sorted(client.rows) == ["small", "small2"]


def test_an_archived_dead_letter_too_large_for_bigquery_keeps_its_data_in_postgres_only() -> None:
    record = ArchivedDeadLetter(
        dead_letter_id="d1",
        event_id="e1",
        source="leadprosper",
        error_class="MaxDeliveryAttempts",
        reason="MaxDeliveryAttempts",
        delivery_attempts=5,
        first_failure_time=T0,
        dead_lettered_at=T0,
        original_message_id=None,
        attributes={},
        data=b"x" * 7_000_000,  # 9.3 MB as base64
    )
    assert bigquery_archive_row(record, T0)["data"] is None
    small = replace(record, data=b"x" * 1000)
    assert bigquery_archive_row(small, T0)["data"] is not None


@settings(max_examples=300, deadline=None)
@given(
    payload=st.dictionaries(st.text(max_size=20), st.text(max_size=200), max_size=8),
    body=st.none() | st.binary(max_size=500),
    problem=st.text(max_size=100),
)
def test_the_cheap_size_bound_is_never_below_the_serialized_size(
    payload: dict[str, str], body: bytes | None, problem: str
) -> None:
    """fit_bigquery skips serializing a row whose bound is under the limit: the bound must hold
    for any text (astral characters, control characters, quotes) and any bytes."""
    text = storable(payload)[0]
    row = replace(
        lead_row("p", at=T0, payload_json=json.dumps(text, ensure_ascii=False)),
        columns={"lead_id": next(iter(text.values()), "L1"), "event_time": T0},
        problems=(Problem(BODY, storable({"p": problem})[0]["p"], "reason"),),
        body=body,
    )
    assert size_bound(row) >= bigquery_row_bytes(row)
