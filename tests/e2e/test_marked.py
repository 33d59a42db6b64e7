"""Mark, don't refuse, on the real stack: every authenticated LeadProsper webhook lands in both
sinks, marked where it could not be understood; current state moves only on what converted."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from google.cloud import bigquery

from tests.support import StackHandle, lead

pytestmark = pytest.mark.stack


def _bq_marked(stack: StackHandle, event_ids: list[str]) -> dict[str, dict[str, Any]]:
    job = stack.bq.query(
        "SELECT event_id, content_type, payload, problems, body, purchase_price, event_time"
        f" FROM `{stack.project_id}.hookpipe.events` WHERE event_id IN UNNEST(@ids)",
        job_config=bigquery.QueryJobConfig(
            query_parameters=[bigquery.ArrayQueryParameter("ids", "STRING", event_ids)]
        ),
    )
    return {row["event_id"]: dict(row) for row in job.result()}


def _pg_marked(stack: StackHandle, event_ids: list[str]) -> dict[str, tuple[Any, ...]]:
    rows = stack.pg(
        "SELECT event_id, content_type, payload, problems, body FROM hookpipe.events "
        "WHERE event_id = ANY(%s)",
        [event_ids],
    )
    return {r[0]: r for r in rows}


def _lead_state(stack: StackHandle, lead_id: str) -> tuple[Any, ...]:
    [row] = stack.pg(
        "SELECT status, purchase_price, event_time, event_id FROM hookpipe.leadprosper_leads "
        "WHERE lead_id = %s",
        [lead_id],
    )
    return row


BOMB = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]><lolz>&lol2;</lolz>'
)


def test_bodies_that_do_not_parse_land_in_both_sinks_with_their_bytes(stack: StackHandle) -> None:
    marker = uuid.uuid4().hex.encode()
    cases = [
        (b'{"lp_status": "SOLD", "m": "' + marker + b'", "lp_lead', "application/json"),
        (BOMB + b"<!-- " + marker + b" -->", "application/xml"),
        (b"\xff\xfe\x00binary junk " + marker, "application/json"),
        (b"lp_status=SOLD&m=" + marker, ""),  # no Content-Type at all
    ]
    sent: dict[str, tuple[bytes, str]] = {}
    for body, content_type in cases:
        headers = {"Authorization": f"Bearer {stack.token}"}
        if content_type:
            headers["Content-Type"] = content_type
        response = stack.http.post(
            f"{stack.ingest_url}/webhooks/leadprosper", content=body, headers=headers
        )
        assert response.status_code == 202, response.text
        sent[response.json()["event_id"]] = (body, content_type or "application/octet-stream")
    ids = list(sent)
    stack.wait_committed(ids)
    pg = _pg_marked(stack, ids)
    bq = _bq_marked(stack, ids)
    assert set(bq) == set(ids)
    for event_id, (body, content_type) in sent.items():
        _, pg_type, payload, problems, pg_body = pg[event_id]
        assert (pg_type, payload, bytes(pg_body)) == (content_type, None, body)
        assert problems[0]["field"] == "(body)"
        assert problems[0]["reason"]
        assert bq[event_id]["payload"] is None
        assert bq[event_id]["body"] == body
        assert bq[event_id]["problems"][0]["field"] == "(body)"


def test_unconvertible_values_land_marked_and_current_state_keeps_good_values(
    stack: StackHandle,
) -> None:
    lead_id = str(uuid.uuid4())  # its request uuid
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)

    def send(**fields: Any) -> str:
        response = stack.post(lead(lp_request_uuid=lead_id, **fields))
        assert response.status_code == 202, response.text
        event_id: str = response.json()["event_id"]
        stack.wait_committed([event_id])
        return event_id

    send(lp_status="ACCEPTED", lp_purchase_price="12.50", lp_timestamp=t0.isoformat())
    sold = send(
        lp_status="SOLD", lp_purchase_price="N/A", lp_timestamp=(t0 + timedelta(1 / 24)).isoformat()
    )
    # The SOLD event moved the lead forward; the price that did not convert kept the good one.
    assert _lead_state(stack, lead_id)[:2] == ("SOLD", Decimal("12.50"))
    [(problems,)] = stack.pg("SELECT problems FROM hookpipe.events WHERE event_id = %s", [sold])
    assert problems == [
        {"field": "lp_purchase_price", "value": "N/A", "reason": "'N/A' is not a valid numeric"}
    ]
    row = _bq_marked(stack, [sold])[sold]
    assert row["purchase_price"] is None
    assert row["problems"] == problems
    assert row["payload"]["lp_purchase_price"] == "N/A"

    # A far-future version is kept but cannot freeze the lead: a later status still applies.
    future = send(lp_status="RETURNED", lp_timestamp="9999-12-31T00:00:00Z")
    assert _lead_state(stack, lead_id)[0] == "SOLD"
    assert "ahead" in _pg_marked(stack, [future])[future][3][0]["reason"]
    later = send(lp_status="PAID", lp_timestamp=(t0 + timedelta(2 / 24)).isoformat())
    assert _lead_state(stack, lead_id)[0::3] == ("PAID", later)


def test_current_state_is_a_fold_over_converted_values_whatever_the_arrival_order(
    stack: StackHandle,
) -> None:
    lead_id = str(uuid.uuid4())  # its request uuid
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    # The newer SOLD event (its price unconvertible) arrives first; the older ACCEPTED one, with
    # a good price, arrives after it: status stays SOLD, the price is the older event's.
    for status, price, minutes in (("SOLD", "N/A", 10), ("ACCEPTED", "12.50", 0)):
        response = stack.post(
            lead(
                lp_request_uuid=lead_id,
                lp_status=status,
                lp_purchase_price=price,
                lp_timestamp=(t0 + timedelta(minutes=minutes)).isoformat(),
            )
        )
        assert response.status_code == 202
        stack.wait_committed([response.json()["event_id"]])
    status, price, event_time, _ = _lead_state(stack, lead_id)
    assert (status, price, event_time) == ("SOLD", Decimal("12.50"), t0 + timedelta(minutes=10))


def test_text_postgres_cannot_store_does_not_fail_its_batch_mates(stack: StackHandle) -> None:
    hostile = [
        '{"lp_request_uuid": "%s", "note": "\\ud800", "x": NaN}',
        '{"lp_request_uuid": "%s", "note": "nul\\u0000"}',
        '{"lp_request_uuid": "%s", "big": Infinity, "deep": [[[["\\udfff"]]]]}',
        '{"lp_request_uuid": "%s", "phone": 123456789012345678901234567890}',
    ]
    bodies = [h % uuid.uuid4() for h in hostile] + [json.dumps(lead()) for _ in range(20)]
    ids = []
    for body in bodies:
        response = stack.post(body)
        assert response.status_code == 202, response.text
        ids.append(response.json()["event_id"])
    stack.wait_committed(ids)
    assert len(_bq_marked(stack, ids)) == len(ids)
    pg = _pg_marked(stack, ids)
    assert [len(pg[i][3]) for i in ids[:4]] == [2, 1, 2, 1]
    assert pg[ids[3]][2]["phone"] == "123456789012345678901234567890"
    assert pg[ids[0]][2]["note"] == "\ufffd"


def test_numbers_a_sink_cannot_hold_are_marked_and_do_not_fail_their_batch_mates(
    stack: StackHandle,
) -> None:
    """Prices Postgres numeric cannot hold (beyond 16383 fraction digits) or BigQuery NUMERIC
    cannot (beyond 9): marked in both sinks; their batch-mates and their leads' states land."""
    hostile = ["1E-20000", "0." + "3" * 20000, "1.0000000001", "1" + "0" * 29]
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    leads = [lead(lp_purchase_price=price, lp_timestamp=t0.isoformat()) for price in hostile]
    leads += [lead(lp_purchase_price="12.50", lp_timestamp=t0.isoformat()) for _ in range(12)]
    ids = []
    for body in leads:
        response = stack.post(body)
        assert response.status_code == 202, response.text
        ids.append(response.json()["event_id"])
    stack.wait_committed(ids)
    bq = _bq_marked(stack, ids)
    pg = _pg_marked(stack, ids)
    assert set(bq) == set(pg) == set(ids)
    for event_id, body in zip(ids, leads, strict=True):
        expected = Decimal(body["lp_purchase_price"]) if body in leads[len(hostile) :] else None
        assert bq[event_id]["purchase_price"] == expected
        state = _lead_state(stack, body["lp_request_uuid"])
        assert state[:2] == ("ACCEPTED", expected)
    for event_id in ids[: len(hostile)]:
        [problem] = pg[event_id][3]
        assert problem["field"] == "lp_purchase_price"
        assert bq[event_id]["problems"] == [problem]


def test_a_body_of_a_hundred_thousand_problems_lands_in_both_sinks(stack: StackHandle) -> None:
    """Each NUL value is a problem: the row lists a bounded number and lands whole."""
    from hookpipe.problems import MAX_PROBLEMS

    marker = uuid.uuid4().hex
    body = f"lp_request_uuid={marker}&lp_status=SOLD&".encode() + b"&".join([b"a=%00"] * 150_000)
    response = stack.http.post(
        f"{stack.ingest_url}/webhooks/leadprosper",
        content=body,
        headers={
            "Authorization": f"Bearer {stack.token}",
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    assert response.status_code == 202, response.text
    event_id = response.json()["event_id"]
    stack.wait_committed([event_id])
    _, _, payload, problems, _ = _pg_marked(stack, [event_id])[event_id]
    assert len(payload["a"]) == 150_000
    assert len(problems) == MAX_PROBLEMS
    assert problems[-1]["reason"] == f"{150_000 - MAX_PROBLEMS + 1:,} more problems not listed"
    bq = _bq_marked(stack, [event_id])[event_id]
    assert bq["problems"] == problems
    assert bq["payload"]["lp_request_uuid"] == marker
