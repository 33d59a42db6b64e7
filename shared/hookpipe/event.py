"""The event contract between ingest and worker: a webhook as a CloudEvent on Pub/Sub.

Ingest publishes each accepted webhook in the CloudEvents Pub/Sub binding's *binary content mode*:
the message data is the webhook body exactly as received, and the context attributes are message
attributes prefixed ``ce-`` (``ce-id``, ``ce-source``, ``ce-type``, ``ce-time``, ``ce-specversion``,
``ce-traceparent``) plus ``content-type`` (the body's own). Keeping the original bytes means
nothing the sender sent is ever lost; both services normalize them with :mod:`hookpipe.payload`.

Pure functions: no I/O.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from cloudevents.conversion import to_binary
from cloudevents.exceptions import GenericException as CloudEventError
from cloudevents.http import CloudEvent, from_http

from hookpipe.errors import EnvelopeError

SOURCE_PREFIX = "/sources/"
# A fixed namespace: event ids are UUIDv5(namespace, "source\0idempotency key"), so the same
# webhook always gets the same id and every sink can de-duplicate on it.
EVENT_ID_NAMESPACE = uuid.UUID("6f1c7a52-2f55-4c8e-9a53-0d3c6a1f4b9e")


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """One accepted webhook."""

    id: str
    source: str  # the source's configured name, e.g. "leadprosper"
    type: str
    time: datetime  # when ingest accepted it (UTC)
    content_type: str  # of ``data``: the webhook's own Content-Type
    data: bytes  # the webhook body, byte for byte
    traceparent: str | None = None  # W3C trace context of the webhook request


def _keep_bytes(data: bytes) -> bytes:
    return data


def event_id(source: str, idempotency_key: str) -> str:
    """The stable event id for a source's idempotency key."""
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{source}\0{idempotency_key}"))


def to_message(event: WebhookEvent) -> tuple[bytes, dict[str, str]]:
    """Encode ``event`` as Pub/Sub (data, attributes) in CloudEvents binary content mode."""
    attributes: dict[str, str] = {
        "id": event.id,
        "source": SOURCE_PREFIX + event.source,
        "type": event.type,
        "time": event.time.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "datacontenttype": event.content_type,
    }
    if event.traceparent:
        attributes["traceparent"] = event.traceparent
    # The identity marshaller sends the body's bytes as they are; the SDK's default would first
    # try (and fail) to serialize them as JSON, an exception per message.
    headers, body = to_binary(CloudEvent(attributes, event.data), data_marshaller=_keep_bytes)
    return bytes(body), {name: str(value) for name, value in headers.items()}


def from_message(data: bytes, attributes: Mapping[str, str]) -> WebhookEvent:
    """Decode a Pub/Sub message published by :func:`to_message`.

    Raises :class:`EnvelopeError` naming what is missing or wrong.
    """
    try:
        # The identity unmarshaller keeps the body's bytes as they are (JSON is not parsed here).
        cloud_event = from_http(dict(attributes), data, data_unmarshaller=_keep_bytes)
    except CloudEventError as exc:
        raise EnvelopeError(f"not a CloudEvent in binary content mode: {exc}") from None
    source = str(cloud_event["source"])
    if not source.startswith(SOURCE_PREFIX) or len(source) == len(SOURCE_PREFIX):
        raise EnvelopeError(f"ce-source {source!r} is not {SOURCE_PREFIX}<name>")
    # Read from the attributes: the cloudevents SDK fills a missing time with "now".
    raw_time = attributes.get("ce-time")
    if not raw_time:
        raise EnvelopeError("ce-time is missing")
    try:
        time = datetime.fromisoformat(str(raw_time))
    except ValueError:
        raise EnvelopeError(f"ce-time {raw_time!r} is not an RFC 3339 timestamp") from None
    if time.tzinfo is None:
        raise EnvelopeError(f"ce-time {raw_time!r} has no UTC offset")
    payload = cloud_event.data
    if not isinstance(payload, bytes):
        payload = b"" if payload is None else str(payload).encode()
    traceparent = cloud_event.get("traceparent")
    return WebhookEvent(
        id=str(cloud_event["id"]),
        source=source.removeprefix(SOURCE_PREFIX),
        type=str(cloud_event["type"]),
        time=time.astimezone(UTC),
        content_type=str(cloud_event.get("datacontenttype") or "application/octet-stream"),
        data=payload,
        traceparent=str(traceparent) if traceparent else None,
    )
