"""Map an event to the rows the sinks store. Pure."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from hookpipe.event import WebhookEvent
from hookpipe.mapping import map_columns
from hookpipe.payload import normalize
from hookpipe.sources import SourceConfig

from hookpipe_worker.delivery import Delivery
from hookpipe_worker.errors import UnknownSource


@dataclass(frozen=True, slots=True)
class EventRow:
    event_id: str
    source: str
    event_type: str
    received_at: datetime
    content_type: str
    payload_json: str  # the normalized body, serialized once for both sinks
    pubsub_message_id: str | None
    columns: dict[str, Any] = field(default_factory=dict)  # typed, from the source's mapping

    @property
    def size(self) -> int:
        return len(self.payload_json) + 256


def build_row(
    event: WebhookEvent, delivery: Delivery, sources: Mapping[str, SourceConfig]
) -> EventRow:
    """Raises a permanent error when the source is unknown, the body does not normalize or a
    mapped value does not convert."""
    config = sources.get(event.source)
    if config is None:
        raise UnknownSource(f"no source {event.source!r} is configured in this worker")
    payload = normalize(event.data, event.content_type)
    return EventRow(
        event_id=event.id,
        source=event.source,
        event_type=event.type,
        received_at=event.time,
        content_type=event.content_type,
        payload_json=json.dumps(payload, ensure_ascii=False, separators=(",", ":")),
        pubsub_message_id=delivery.message_id,
        columns=map_columns(config.columns, payload),
    )


def _rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _bigquery_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return _rfc3339(value)
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
            "received_at": _rfc3339(row.received_at),
            "inserted_at": _rfc3339(inserted_at),
            "content_type": row.content_type,
            "payload": row.payload_json,  # JSON columns take a JSON string in insertAll
            "pubsub_message_id": row.pubsub_message_id,
        }
    )
    return record
