"""The in-batch fold of current state (``current_state.fold``). Pure; the SQL half that merges
with stored rows is exercised on the real PostgreSQL (tests/e2e/test_marked.py, tests/faults)."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hookpipe.event import WebhookEvent
from hookpipe.sources import load_source_configs
from hookpipe_worker.delivery import Delivery
from hookpipe_worker.rows import EventRow, build_row
from hookpipe_worker.sinks.current_state import fold

REPO = Path(__file__).resolve().parents[2]
SOURCES = load_source_configs(REPO / "infra/sources.toml")
SPEC = SOURCES["leadprosper"].current_state
assert SPEC is not None
T0 = datetime(2026, 11, 30, 9, tzinfo=UTC)


def _row(event_id: str, minutes: int, **fields: Any) -> EventRow:
    body = {"lp_request_uuid": "L1", "lp_timestamp": (T0 + timedelta(minutes=minutes)).isoformat()}
    body.update(fields)
    event = WebhookEvent(
        event_id, "leadprosper", "t", T0, "application/json", json.dumps(body).encode()
    )
    return build_row(event, Delivery(data=b"", attributes={}), SOURCES)


def test_each_column_takes_its_newest_converted_value_in_any_order() -> None:
    rows = [
        _row("a", 0, lp_status="ACCEPTED", lp_purchase_price="12.50"),
        _row("b", 10, lp_status="SOLD", lp_purchase_price="N/A"),
        _row("c", 5, lp_status="PENDING", lp_purchase_price="11"),
    ]
    for order in itertools.permutations(rows):
        [state] = fold(SPEC, order)
        assert state.version == (T0 + timedelta(minutes=10), "b")
        assert state.values["status"] == "SOLD"
        assert str(state.values["purchase_price"]) == "11"  # c's: b's did not convert
        assert state.versions["purchase_price"] == (T0 + timedelta(minutes=5), "c")


def test_events_that_cannot_be_placed_leave_current_state_alone() -> None:
    far = _row("f", 0, lp_status="X", lp_timestamp="9999-01-01T00:00:00Z")
    bad = _row("g", 0, lp_status="Y", lp_timestamp="yesterday")
    no_key = _row("h", 0, lp_request_uuid="")
    assert fold(SPEC, [far, bad, no_key]) == []


def test_keys_come_out_sorted_so_batches_lock_in_one_order() -> None:
    rows = [_row(str(i), 0, lp_request_uuid=f"L{i}") for i in (3, 1, 2)]
    assert [s.key for s in fold(SPEC, rows)] == ["L1", "L2", "L3"]


def test_an_event_whose_key_did_not_convert_leaves_current_state_alone() -> None:
    """A lead id that is a list cannot name a row: the event is stored marked, no state moves."""
    row = _row("k", 0, lp_request_uuid=["L1", "L2"], lp_status="SOLD")
    assert row.unconverted == {"lead_id"}
    assert fold(SPEC, [row]) == []
