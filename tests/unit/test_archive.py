"""What the dead-letter archive stores for each kind of dead letter (``archive_record``). Pure."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

from hookpipe_worker.dead_letters import archive_record
from hookpipe_worker.delivery import Delivery
from hookpipe_worker.sinks.archive import bigquery_archive_row

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
EVENT = {
    "ce-id": "e-1",
    "ce-source": "/sources/leadprosper",
    "ce-specversion": "1.0",
    "content-type": "application/json",
}


def test_a_worker_dead_letter_keeps_its_reason_and_history() -> None:
    delivery = Delivery(
        data=b'{"a": 1}',
        attributes={
            **EVENT,
            "hookpipe-error-class": "RowRejected",
            "hookpipe-error-message": "postgres rejected the row: x (SQLSTATE 22023)",
            "hookpipe-delivery-attempt": "2",
            "hookpipe-first-failure-time": "2026-11-29T08:00:00Z",
            "hookpipe-original-message-id": "m-0",
        },
        message_id="dl-7",
        publish_time="2026-11-30T11:00:00Z",
    )
    record = archive_record(delivery, NOW)
    assert record.dead_letter_id == "dl-7"
    assert (record.event_id, record.source) == ("e-1", "leadprosper")
    assert record.error_class == "RowRejected"
    assert record.reason.startswith("postgres rejected the row")
    assert record.delivery_attempts == 2
    assert record.first_failure_time == datetime(2026, 11, 29, 8, tzinfo=UTC)
    assert record.dead_lettered_at == datetime(2026, 11, 30, 11, tzinfo=UTC)
    assert record.original_message_id == "m-0"
    assert record.attributes == delivery.attributes
    row = bigquery_archive_row(record, NOW)
    assert base64.b64decode(row["data"]) == b'{"a": 1}'
    assert json.loads(row["attributes"]) == delivery.attributes


def test_a_pubsub_dead_letter_is_max_delivery_attempts() -> None:
    delivery = Delivery(
        data=b"{}",
        attributes={**EVENT, "CloudPubSubDeadLetterSourceDeliveryCount": "5"},
        message_id="dl-8",
    )
    record = archive_record(delivery, NOW)
    assert record.error_class == "MaxDeliveryAttempts"
    assert record.reason == "not acknowledged after 5 delivery attempts"
    assert record.delivery_attempts == 5
    assert record.dead_lettered_at == NOW == record.first_failure_time


def test_anything_at_all_is_archived_without_raising() -> None:
    odd = Delivery(
        data=b"\x00\xff",
        attributes={"k": "nul \x00", "hookpipe-delivery-attempt": "²", "ce-source": "x"},
        publish_time="not a time",
    )
    record = archive_record(odd, NOW)
    assert record.error_class == "Unknown"
    assert record.delivery_attempts is None
    assert record.attributes["k"] == "nul \ufffd"
    assert record.dead_lettered_at == NOW
    # No message id: the content names it, so a redelivery is the same record.
    assert record.dead_letter_id == archive_record(odd, NOW).dead_letter_id
    assert len(record.dead_letter_id) == 64
