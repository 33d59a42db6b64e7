"""Fault injection on the real stack: a few hundred webhooks through ingest per scenario while the
worker is SIGKILLed, Postgres or the BigQuery emulator is stopped, duplicates and out-of-order
redeliveries arrive, and poison messages are mixed in. Then the invariant checker runs."""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from google.cloud.pubsub_v1 import PublisherClient, SubscriberClient
from hookpipe.cli import subscriptions as subs

from tests.faults.invariants import Run, check
from tests.support import StackHandle, lead

pytestmark = pytest.mark.stack
WEBHOOKS = 300


@pytest.fixture(scope="module", autouse=True)
def patient_retries(stack: StackHandle) -> Iterator[None]:
    """Faults here last ~10 s; the local profile's 5 fast attempts would dead-letter healthy
    messages. Give the push subscription production-like patience for this module, then put the
    file's settings back."""
    name = "hookpipe-worker-push"
    sub = SubscriberClient()
    before = subs.live_settings(
        sub.get_subscription(subscription=sub.subscription_path(stack.project_id, name))
    )
    patient = {
        **before,
        "retry_policy.minimum_backoff_seconds": 1,
        "retry_policy.maximum_backoff_seconds": 4,
        "dead_letter_policy.max_delivery_attempts": 30,
    }
    fields = {"retry_policy.minimum_backoff_seconds", "dead_letter_policy.max_delivery_attempts"}
    # The same update the operator CLI makes (`hookpipe subscriptions set`).
    request, mask = subs.update_request(stack.project_id, name, patient, fields)
    sub.update_subscription(subscription=request, update_mask=mask)
    try:
        yield
    finally:
        request, mask = subs.update_request(stack.project_id, name, before, fields)
        sub.update_subscription(subscription=request, update_mask=mask)
        sub.close()


def send(
    stack: StackHandle,
    run: Run,
    bodies: list[dict[str, Any]],
    during: Callable[[], None] | None = None,
    after: int = 0,
) -> None:
    """Post ``bodies`` from 8 concurrent senders; once ``after`` were accepted, run ``during``
    (the fault) while the rest are still being sent."""
    accepted_count = threading.Event()
    lock = threading.Lock()

    def post(body: dict[str, Any]) -> None:
        response = stack.post(body)
        assert response.status_code == 202, response.text
        with lock:
            run.accepted[response.json()["event_id"]] = body
            if len(run.accepted) >= after:
                accepted_count.set()

    run.sent += len(bodies)
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(post, b) for b in bodies]
        if during is not None:
            accepted_count.wait(60)
            during()
        for future in futures:
            future.result()


def test_worker_killed_mid_batch_and_restarted(stack: StackHandle) -> None:
    """SIGKILL the worker's serving process while pushes are being committed; its supervisor
    starts a new one. (Killing the whole service, so that pushes meet "connection refused",
    stalls the emulator's push delivery for good: an emulator quirk, docs/delivery.md.)"""
    run = Run("worker SIGKILL")
    before = stack.stack.worker.serving_pid()

    def crash() -> None:
        assert stack.stack.worker.crash_serving_process() != before

    send(stack, run, [lead() for _ in range(WEBHOOKS)], during=crash, after=WEBHOOKS // 3)
    check(stack, run)


def test_postgres_stopped_for_ten_seconds(stack: StackHandle) -> None:
    run = Run("postgres down 10 s")

    def outage() -> None:
        stack.stack.postgres.stop()
        time.sleep(10)  # the fault itself: Postgres stays down this long
        stack.stack.postgres.start()

    send(stack, run, [lead() for _ in range(WEBHOOKS)], during=outage, after=WEBHOOKS // 3)
    check(stack, run)


def test_bigquery_emulator_stopped_and_started(stack: StackHandle) -> None:
    run = Run("bigquery down")

    def outage() -> None:
        stack.stack.bigquery.stop()
        time.sleep(5)  # the fault itself
        stack.stack.bigquery.start()

    send(stack, run, [lead() for _ in range(WEBHOOKS)], during=outage, after=WEBHOOKS // 3)
    check(stack, run)


def test_duplicates_and_out_of_order_redeliveries(stack: StackHandle) -> None:
    run = Run("duplicates + out of order")
    statuses = [("NEW", 1_795_600_000), ("ACCEPTED", 1_795_600_060), ("SOLD", 1_795_600_120)]
    bodies = []
    for _ in range(WEBHOOKS // 9):
        lead_id, request = f"LP-{uuid.uuid4().hex[:10]}", str(uuid.uuid4())
        for status, ts in statuses:
            body = lead(
                lp_lead_id=lead_id, lp_request_uuid=request, lp_status=status, lp_timestamp=str(ts)
            )
            bodies += [body] * 3  # each status sent three times
        run.newest_status[lead_id] = "SOLD"
    random.Random(7).shuffle(bodies)
    send(stack, run, bodies)
    # The oldest status again, after everything else has landed: it must not win.
    check(stack, run)
    stale = [b for b in bodies if b["lp_status"] == "NEW"][: len(run.newest_status)]
    send(stack, run, stale)
    tallies = check(stack, run)
    assert tallies["accepted"] == len(run.newest_status) * 3  # one event per (lead, status)


def test_poison_messages_are_dead_lettered_with_their_reason(stack: StackHandle) -> None:
    run = Run("poison")
    good = [lead() for _ in range(WEBHOOKS - 25)]
    poison_bodies = {
        "RowRejected": [lead(note="NUL \u0000 Postgres cannot store") for _ in range(5)],
        "MappingError": [lead(lp_timestamp="yesterday") for _ in range(5)],
    }
    # Postgres stores this price (numeric is unbounded) but BigQuery's NUMERIC refuses it per
    # row: the worker must take its Postgres row back before committing, and dead-letter it.
    too_big = [lead(lp_sold_price="1e40") for _ in range(5)]
    poison_bodies["RowRejected"] += too_big
    everything = good + [b for group in poison_bodies.values() for b in group]
    random.Random(11).shuffle(everything)
    send(stack, run, everything)
    by_request = {b["lp_request_uuid"]: c for c, group in poison_bodies.items() for b in group}
    for event_id, body in run.accepted.items():
        if body["lp_request_uuid"] in by_request:
            run.poison[event_id] = by_request[body["lp_request_uuid"]]
    # Messages that never came through ingest: not a CloudEvent, and an unknown source.
    publisher = PublisherClient()
    topic = publisher.topic_path(stack.project_id, "hookpipe-events")
    for i in range(5):
        marker = f"garbage-{uuid.uuid4()}"
        publisher.publish(topic, b"\x00 not an event", **{"test-marker": marker}).result()
        run.poison[marker] = "EnvelopeError"
        event_id = str(uuid.uuid4())
        publisher.publish(
            topic,
            json.dumps({"i": i}).encode(),
            **{
                "ce-specversion": "1.0",
                "ce-id": event_id,
                "ce-source": "/sources/nobody",
                "ce-type": "t",
                "ce-time": "2026-11-26T00:00:00Z",
                "content-type": "application/json",
            },
        ).result()
        run.poison[event_id] = "UnknownSource"
    publisher.stop()
    run.sent += 10
    check(stack, run)
    too_big_requests = {b["lp_request_uuid"] for b in too_big}
    rejected_by_bigquery = [
        run.dead_letters[i]
        for i, body in run.accepted.items()
        if body["lp_request_uuid"] in too_big_requests
    ]
    assert len(rejected_by_bigquery) == len(too_big)
    assert all(
        a["hookpipe-error-message"].startswith("bigquery rejected the row: sold_price")
        for a in rejected_by_bigquery
    )
