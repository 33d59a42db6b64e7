"""Events, push envelopes and rows as ingest, Pub/Sub and the worker would make them, for tests
that talk to the worker, its writer or the dead-letter topic directly."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

from hookpipe.event import WebhookEvent, event_id, to_message
from hookpipe_worker.rows import EventRow


def webhook_event(body: dict[str, Any], source: str = "leadprosper") -> WebhookEvent:
    """A JSON webhook as ingest publishes it (id from the body, as the content-hash rule)."""
    data = json.dumps(body).encode()
    return WebhookEvent(
        event_id(source, data.decode()),
        source,
        "com.leadprosper.campaign_trigger",
        datetime.now(UTC),
        "application/json",
        data,
    )


def push_envelope(
    data: bytes,
    attributes: dict[str, str],
    message_id: str = "m-1",
    delivery_attempt: int | None = 2,
) -> dict[str, Any]:
    """The JSON body of a Pub/Sub push request."""
    envelope: dict[str, Any] = {
        "message": {
            "data": base64.b64encode(data).decode(),
            "attributes": attributes,
            "messageId": message_id,
        },
        "subscription": "projects/p/subscriptions/hookpipe-worker-push",
    }
    if delivery_attempt is not None:
        envelope["deliveryAttempt"] = delivery_attempt
    return envelope


def event_envelope(body: dict[str, Any], source: str = "leadprosper") -> dict[str, Any]:
    """A push request carrying ``body`` as a hookpipe event."""
    return push_envelope(*to_message(webhook_event(body, source)))


def lead_row(
    event_id: str,
    *,
    lead_id: str = "L1",
    at: datetime | None = None,
    payload_json: str = "{}",
    source: str = "leadprosper",
) -> EventRow:
    """A row as the worker builds it from a LeadProsper event: the columns current state reads."""
    at = at or datetime.now(UTC)
    return EventRow(
        event_id=event_id,
        source=source,
        event_type="com.leadprosper.campaign_trigger",
        received_at=at,
        content_type="application/json",
        payload_json=payload_json,
        pubsub_message_id=None,
        columns={"lead_id": lead_id, "status": "NEW", "event_time": at},
    )
