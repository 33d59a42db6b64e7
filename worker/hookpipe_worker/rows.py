"""Map an event to the rows the sinks store. Pure."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hookpipe.event import WebhookEvent
from hookpipe.payload import normalize

from hookpipe_worker.delivery import Delivery


@dataclass(frozen=True, slots=True)
class EventRow:
    event_id: str
    source: str
    event_type: str
    received_at: datetime
    content_type: str
    payload_json: str  # the normalized body, serialized once for both sinks
    pubsub_message_id: str | None

    @property
    def size(self) -> int:
        return len(self.payload_json) + 256


def build_row(event: WebhookEvent, delivery: Delivery) -> EventRow:
    """Raises ``PayloadError`` when the body does not normalize (a permanent failure)."""
    payload = normalize(event.data, event.content_type)
    return EventRow(
        event_id=event.id,
        source=event.source,
        event_type=event.type,
        received_at=event.time,
        content_type=event.content_type,
        payload_json=json.dumps(payload, ensure_ascii=False, separators=(",", ":")),
        pubsub_message_id=delivery.message_id,
    )


def _rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def bigquery_row(row: EventRow, inserted_at: datetime) -> dict[str, Any]:
    return {
        "event_id": row.event_id,
        "source": row.source,
        "event_type": row.event_type,
        "received_at": _rfc3339(row.received_at),
        "inserted_at": _rfc3339(inserted_at),
        "content_type": row.content_type,
        "payload": row.payload_json,  # JSON columns take a JSON string in insertAll
        "pubsub_message_id": row.pubsub_message_id,
    }
