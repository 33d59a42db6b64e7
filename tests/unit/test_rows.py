"""The worker's conversion and marking rules (``build_row``), with a fixed clock. Pure."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hookpipe.event import WebhookEvent
from hookpipe.sources import load_source_configs
from hookpipe_worker.delivery import Delivery
from hookpipe_worker.errors import UnknownSource
from hookpipe_worker.rows import EventRow, bigquery_row, build_row

REPO = Path(__file__).resolve().parents[2]
SOURCES = load_source_configs(REPO / "infra/sources.toml")
RECEIVED = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
DELIVERY = Delivery(data=b"", attributes={}, message_id="m-1")


def _event(data: bytes, content_type: str = "application/json", **kw: Any) -> WebhookEvent:
    return WebhookEvent(
        "e-1", "leadprosper", "com.leadprosper.campaign_trigger", RECEIVED, content_type, data, **kw
    )


def _row(body: dict[str, Any]) -> EventRow:
    return build_row(_event(json.dumps(body).encode()), DELIVERY, SOURCES)


def _problems(row: EventRow) -> list[dict[str, Any]]:
    return json.loads(row.problems_json or "[]")


def test_a_clean_event_has_no_problems() -> None:
    row = _row({"lp_request_uuid": "L1", "lp_status": "SOLD", "lp_purchase_price": "12.50"})
    assert row.problems == ()
    assert row.problems_json is None
    assert row.unconverted == frozenset()
    assert row.columns["purchase_price"] == Decimal("12.50")
    assert row.body is None


def test_an_unconvertible_value_is_null_and_marked_and_the_payload_stays_complete() -> None:
    body = {"lp_request_uuid": "L1", "lp_status": "SOLD", "lp_purchase_price": "N/A"}
    row = _row(body)
    assert row.columns["purchase_price"] is None
    assert row.columns["status"] == "SOLD"  # the columns that converted are kept
    assert row.unconverted == {"purchase_price"}
    assert _problems(row) == [
        {
            "field": "lp_purchase_price",
            "value": "N/A",
            "reason": "'N/A' is not a valid numeric",
        }
    ]
    assert json.loads(row.payload_json or "") == body


def test_a_version_more_than_a_day_ahead_is_marked_so_it_cannot_freeze_current_state() -> None:
    ahead = RECEIVED + timedelta(days=1, seconds=1)
    row = _row({"lp_request_uuid": "L1", "lp_timestamp": ahead.isoformat()})
    assert row.columns["event_time"] is None
    assert row.unconverted == {"event_time"}
    [problem] = _problems(row)
    assert problem["field"] == "lp_timestamp"
    assert "ahead of the time ingest received it" in problem["reason"]
    # A day ahead exactly is still believed (clock skew, time zones).
    assert _row({"lp_timestamp": (RECEIVED + timedelta(days=1)).isoformat()}).problems == ()
    assert _row({"lp_timestamp": "9999-12-31T00:00:00Z"}).unconverted == {"event_time"}


def test_a_key_too_long_to_index_is_marked_so_it_cannot_fail_current_state() -> None:
    from hookpipe_worker.rows import MAX_KEY_BYTES

    row = _row({"lp_request_uuid": "é" * (MAX_KEY_BYTES // 2 + 1), "lp_status": "SOLD"})
    assert row.columns["lead_id"] is None
    assert row.unconverted == {"lead_id"}
    assert "too long to key current state" in _problems(row)[0]["reason"]
    assert _row({"lp_request_uuid": "k" * MAX_KEY_BYTES}).problems == ()


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (_event(b'{"lp_status": "SOL', problem="JSON body does not parse: x"), "does not parse"),
        (_event(b"\xff\xfe{", "application/json"), "not valid UTF-8"),
        (_event(b"<a>", "application/xml"), "XML body does not parse"),
    ],
)
def test_a_body_that_does_not_parse_lands_with_its_bytes_and_no_payload(
    event: WebhookEvent, reason: str
) -> None:
    row = build_row(event, DELIVERY, SOURCES)
    assert row.payload_json is None
    assert row.body == event.data
    assert row.content_type == event.content_type
    assert row.columns == {}  # so the current-state table is not touched
    [problem] = _problems(row)
    assert problem["field"] == "(body)"
    assert reason in problem["reason"]
    record = bigquery_row(row, RECEIVED)
    assert base64.b64decode(record["body"]) == event.data
    assert record["payload"] is None


def test_text_postgres_cannot_store_is_replaced_and_marked() -> None:
    data = b'{"note": "a\\ud800b", "nul": "x\\u0000", "n": NaN, "l": [Infinity], "k\\u0000": 1}'
    row = build_row(_event(data), DELIVERY, SOURCES)
    assert json.loads(row.payload_json or "") == {
        "note": "a\ufffdb",
        "nul": "x\ufffd",
        "n": None,
        "l": [None],
        "k\ufffd": 1,
    }
    assert row.payload_json is not None
    assert row.payload_json.encode("utf-8")
    assert [p["field"] for p in _problems(row)] == ["note", "nul", "n", "l[0]", "k\ufffd"]


def test_an_unknown_source_is_the_one_thing_that_still_raises() -> None:
    event = WebhookEvent("e", "gone", "t", RECEIVED, "application/json", b"{}")
    with pytest.raises(UnknownSource):
        build_row(event, DELIVERY, SOURCES)


def test_bigquery_row_carries_problems_as_json_text() -> None:
    record = bigquery_row(_row({"lp_request_uuid": "L1", "lp_sold_price": "lots"}), RECEIVED)
    assert json.loads(record["problems"])[0]["field"] == "lp_sold_price"
    assert record["sold_price"] is None
    assert record["body"] is None


def test_problems_are_bounded_and_counted_in_the_rows_size() -> None:
    """A 1 MB form of NUL values would be 160k problems: a row BigQuery refuses, seconds of CPU."""
    from hookpipe.problems import MAX_PROBLEMS
    from hookpipe_worker.rows import bigquery_row_bytes

    body = b"&".join([b"lp_purchase_price=N%2FA", *[b"a=%00"] * 160_000])
    row = build_row(_event(body, "application/x-www-form-urlencoded"), DELIVERY, SOURCES)
    problems = _problems(row)
    assert len(problems) == MAX_PROBLEMS
    assert problems[-2] == {
        "field": "(problems)",
        "value": None,
        "reason": f"{160_000 - (MAX_PROBLEMS - 2):,} more problems not listed",
    }
    assert problems[-1]["field"] == "lp_purchase_price"  # a column's problem is always listed
    assert row.payload_in_bigquery
    assert bigquery_row_bytes(row) < 2 * len(body) + 100_000
    assert row.size > len(row.payload_json or "") + sum(len(p["reason"]) for p in problems)
