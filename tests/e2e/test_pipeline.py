"""End to end over HTTP on the real stack: ingest → Pub/Sub emulator → worker → both sinks."""

from __future__ import annotations

import json
import uuid
from urllib.parse import urlencode

import pytest
from google.api_core.exceptions import DeadlineExceeded
from google.cloud.pubsub_v1 import SubscriberClient

from tests.support import StackHandle, lead, postgres_refuses, wait_for

pytestmark = pytest.mark.stack


def test_json_webhook_lands_once_in_both_sinks(stack: StackHandle) -> None:
    body = lead()
    response = stack.post(body)
    assert response.status_code == 202, response.text
    event_id = response.json()["event_id"]

    stack.wait_committed([event_id])
    pg = stack.pg_events([event_id])
    assert pg[event_id][1:3] == ("leadprosper", "com.leadprosper.campaign_trigger")
    assert pg[event_id][3] == body
    raw = stack.bq_rows("raw_events", [event_id])
    assert len(raw) == 1
    assert raw[0]["payload"] == body
    assert stack.bq_rows("events", [event_id]) == raw


def test_form_webhook_lands_once_in_both_sinks(stack: StackHandle) -> None:
    fields = lead(lp_status="SOLD")
    response = stack.post(urlencode(fields), content_type="application/x-www-form-urlencoded")
    assert response.status_code == 202, response.text
    event_id = response.json()["event_id"]

    stack.wait_committed([event_id])
    assert stack.pg_events([event_id])[event_id][3] == fields
    raw = stack.bq_rows("raw_events", [event_id])
    assert [r["payload"] for r in raw] == [fields]


def test_token_in_query_parameter_is_accepted(stack: StackHandle) -> None:
    response = stack.post(lead(), token="", params={"token": stack.token})
    assert response.status_code == 202, response.text
    stack.wait_committed([response.json()["event_id"]])


def test_same_webhook_twice_is_one_row(stack: StackHandle) -> None:
    body = json.dumps(lead())
    first, second = stack.post(body), stack.post(body)
    assert first.status_code == second.status_code == 202
    event_id = first.json()["event_id"]
    assert second.json()["event_id"] == event_id
    stack.wait_committed([event_id])
    # Both publishes were delivered: wait until the worker has answered the second one too.
    wait_for(lambda: len(stack.bq_rows("raw_events", [event_id])) >= 1, what="BigQuery row")
    assert len(stack.pg_events([event_id])) == 1
    assert len(stack.bq_rows("events", [event_id])) == 1


def _tap(stack: StackHandle) -> tuple[SubscriberClient, str]:
    """A pull subscription on the events topic that sees every message published from now on."""
    sub = SubscriberClient()
    path = sub.subscription_path(stack.project_id, f"test-tap-{uuid.uuid4().hex[:8]}")
    topic = f"projects/{stack.project_id}/topics/hookpipe-events"
    sub.create_subscription(name=path, topic=topic, ack_deadline_seconds=60)
    return sub, path


def test_wrong_token_is_401_and_nothing_is_published(stack: StackHandle) -> None:
    sub, tap = _tap(stack)
    try:
        rejected = lead(note=f"must-not-publish-{uuid.uuid4()}")
        for token in ("wrong-token-wrong-token", ""):
            response = stack.post(rejected, token=token)
            assert response.status_code == 401, response.text
            assert response.json()["error"]
        # A valid webhook sent afterwards marks where the rejected ones would have been.
        marker = lead()
        accepted = stack.post(marker)
        assert accepted.status_code == 202
        seen: list[dict[str, object]] = []

        def marker_seen() -> bool:
            try:
                pulled = sub.pull(subscription=tap, max_messages=100, timeout=5)
            except DeadlineExceeded:
                return False
            for received in pulled.received_messages:
                seen.append(json.loads(received.message.data))
            if pulled.received_messages:
                sub.acknowledge(
                    subscription=tap, ack_ids=[r.ack_id for r in pulled.received_messages]
                )
            return any(m.get("lp_request_uuid") == marker["lp_request_uuid"] for m in seen)

        wait_for(marker_seen, 30, "the marker webhook on the events topic")
        assert not any(m.get("note") == rejected["note"] for m in seen)
        # Committed before the next test starts, so no test's rows share its batches.
        stack.wait_committed([accepted.json()["event_id"]])
    finally:
        sub.delete_subscription(subscription=tap)
        sub.close()


def test_unwritable_message_is_redelivered_then_dead_lettered_by_pubsub(
    stack: StackHandle,
) -> None:
    # Class 55 (object not in prerequisite state): not a data error, so the worker treats it
    # as passing and lets Pub/Sub retry, then dead-letter.
    with postgres_refuses(stack, {"reject_in_postgres": "55000"}):
        body = lead(reject_in_postgres="yes")
        response = stack.post(body)
        assert response.status_code == 202
        event_id = response.json()["event_id"]
        [(attributes, data)] = stack.take_dead_letters(
            lambda attrs, _: attrs.get("ce-id") == event_id,
            lambda found: len(found) >= 1,
            timeout=90,
        )
    # Forwarded by the emulator's own dead-letter policy after the maximum delivery attempts,
    # with the original data and attributes intact.
    assert attributes["CloudPubSubDeadLetterSourceDeliveryCount"] == "5"
    assert attributes["CloudPubSubDeadLetterSourceSubscription"].endswith("hookpipe-worker-push")
    assert json.loads(data) == body
    assert attributes["ce-source"] == "/sources/leadprosper"
    assert stack.pg_events([event_id]) == {}


def test_an_event_says_how_hookpipe_learnt_of_it_in_both_sinks(stack: StackHandle) -> None:
    """origin: 'webhook' for what ingest received; 'reconcile' for what hookpipe reconcile
    synthesized from the sender's API (published with ce-hookpipeorigin)."""
    from dataclasses import replace

    from google.cloud.pubsub_v1 import PublisherClient
    from hookpipe.event import to_message

    from tests.events import webhook_event

    received = stack.post(lead())
    assert received.status_code == 202
    reconciled = replace(webhook_event(lead()), origin="reconcile")
    publisher = PublisherClient()
    topic = publisher.topic_path(stack.project_id, "hookpipe-events")
    data, attributes = to_message(reconciled)
    publisher.publish(topic, data, **attributes).result(timeout=30)
    ids = [received.json()["event_id"], reconciled.id]
    stack.wait_committed(ids)
    pg = dict(
        stack.pg("SELECT event_id, origin FROM hookpipe.events WHERE event_id = ANY(%s)", [ids])
    )
    bq = {r["event_id"]: r["origin"] for r in stack.bq_rows("events", ids, "origin")}
    assert pg == bq == {ids[0]: "webhook", ids[1]: "reconcile"}
