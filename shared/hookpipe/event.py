"""The event contract between ingest and worker: a webhook as a CloudEvent on Pub/Sub.

Ingest publishes each accepted webhook in the CloudEvents Pub/Sub binding's *binary content mode*:
the message data is the webhook body exactly as received, and the context attributes are message
attributes prefixed ``ce-`` (``ce-id``, ``ce-source``, ``ce-type``, ``ce-time``, ``ce-specversion``,
``ce-traceparent``) plus ``content-type`` (the body's own). Keeping the original bytes means
nothing the sender sent is ever lost; both services normalize them with :mod:`hookpipe.payload`.

A webhook ingest accepted although its body cannot be understood (from a source whose sender never
retries: ``sender_retries = false``) carries the extension attribute ``ce-hookpipeproblem``, saying
what was wrong; the worker stores it marked, with the original bytes, instead of normalizing it.

Pure functions: no I/O.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hookpipe.errors import EnvelopeError
from hookpipe.sources import IdempotencyRule

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
    problem: str | None = None  # why the body cannot be understood, when ingest accepted it anyway
    origin: str = "webhook"  # or "reconcile": synthesized from the sender's API (docs/reconcile.md)


# CloudEvents extension attribute (lower-case alphanumerics only) marking an event whose body
# ingest accepted without understanding it.
PROBLEM_EXTENSION = "hookpipeproblem"
# CloudEvents extension attribute naming how hookpipe learnt of an event, when not from a webhook
# ingest received: "reconcile" (hookpipe reconcile, from the sender's own API).
ORIGIN_EXTENSION = "hookpipeorigin"
WEBHOOK, RECONCILE = "webhook", "reconcile"
ORIGINS = (WEBHOOK, RECONCILE)
MAX_ATTRIBUTE_BYTES = 1024  # Pub/Sub refuses a longer attribute value
MAX_PROBLEM_BYTES = 512  # the problem attribute stays well under that


def clip_attribute(text: str, limit: int = MAX_PROBLEM_BYTES) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes, on a character boundary; text UTF-8
    cannot encode (a lone surrogate from a sender's JSON) is replaced, not raised on."""
    encoded = text.encode("utf-8", errors="replace")
    if len(encoded) <= limit:
        return encoded.decode()
    return encoded[: limit - 3].decode(errors="ignore") + "..."


def event_id(source: str, idempotency_key: str) -> str:
    """The stable event id for a source's idempotency key."""
    # surrogatepass: the key is the sender's text, and JSON can carry a lone surrogate that
    # UTF-8 cannot encode; every other text encodes exactly as before, so ids do not change.
    name = f"{source}\0{idempotency_key}".encode("utf-8", "surrogatepass")
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, name))


def idempotency_key(
    rule: IdempotencyRule, headers: Mapping[str, str], payload: Mapping[str, Any], body: bytes
) -> str:
    """The key that makes a resent webhook map to the same event id (see ``IdempotencyRule``).
    Ingest derives it from each webhook, and ``hookpipe reconcile`` from the event it synthesizes
    for one the sender's API has, so both arrive at one id for one event. ``headers``: lower-case
    names."""
    if rule.header is not None:
        value = headers.get(rule.header.lower(), "").strip()
        if value:
            return f"header:{value}"
    if rule.fields:
        values = [payload.get(field) for field in rule.fields]
        if all(isinstance(v, str | int) and str(v) != "" for v in values):
            return "fields:" + "\x1f".join(str(v) for v in values)
    return "sha256:" + hashlib.sha256(body).hexdigest()


def to_message(event: WebhookEvent) -> tuple[bytes, dict[str, str]]:
    """Encode ``event`` as Pub/Sub (data, attributes) in CloudEvents binary content mode.

    Written out rather than through the SDK's ``to_binary``, a measurable share of ingest's CPU
    per request (docs/benchmarks.md, "Ingest"): the mapping is fixed and small.
    tests/unit/test_event.py proves, over generated events, that it equals ``to_binary``'s
    output attribute for attribute (in order) and byte for byte; the SDK stays a dependency as
    that oracle, and for decoding.
    """
    attributes = {
        "content-type": event.content_type,
        CE_SPECVERSION: "1.0",
        CE_ID: event.id,
        CE_SOURCE: SOURCE_PREFIX + event.source,
        CE_TYPE: event.type,
        CE_TIME: rfc3339(event.time),
    }
    if event.traceparent:
        attributes[CE_TRACEPARENT] = event.traceparent
    if event.problem:
        attributes[ATTRIBUTE_PREFIX + PROBLEM_EXTENSION] = clip_attribute(event.problem)
    if event.origin != WEBHOOK:
        attributes[ATTRIBUTE_PREFIX + ORIGIN_EXTENSION] = event.origin
    return event.data, attributes


def rfc3339(moment: datetime) -> str:
    """``moment`` in UTC, RFC 3339 with a ``Z`` (CloudEvents time, BigQuery TIMESTAMP)."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


STRUCTURED_MODE = "application/cloudevents+json"
ATTRIBUTE_PREFIX = "ce-"
# The context attributes as Pub/Sub attribute names (binary mode), each named once.
CE_ID = "ce-id"
CE_SOURCE = "ce-source"
CE_TYPE = "ce-type"
CE_TIME = "ce-time"
CE_SPECVERSION = "ce-specversion"
CE_TRACEPARENT = "ce-traceparent"
# Binary mode's required context attributes (CloudEvents 1.0).
_REQUIRED = (CE_SPECVERSION, CE_ID, CE_SOURCE, CE_TYPE)


def from_message(data: bytes, attributes: Mapping[str, str]) -> WebhookEvent:
    """Decode a Pub/Sub message published by :func:`to_message`, or any CloudEvent in the Pub/Sub
    binding: binary content mode (``ce-*`` attributes, names case-insensitive) or structured
    content mode (the event as JSON data, ``content-type: application/cloudevents+json``).

    **The mode is chosen by the attributes, never by the Content-Type.** A message with any
    ``ce-*`` attribute is binary mode: its ``content-type`` is the *data's* (the webhook's own, a
    sender's choice), so a sender who sends ``application/cloudevents+json`` must not turn its
    body into the envelope: the id, source, type and time are what ingest authenticated. Only a
    message without ``ce-*`` attributes (no ingest publishes one) is read as structured mode.

    Raises :class:`EnvelopeError` naming what is missing or wrong.
    """
    attrs = {name.lower(): value for name, value in attributes.items()}
    if any(name.startswith(ATTRIBUTE_PREFIX) for name in attrs):
        return _from_binary(data, attrs)
    if attrs.get("content-type", "").split(";", 1)[0].strip().lower() == STRUCTURED_MODE:
        return _from_structured(_structured_document(data))
    raise EnvelopeError("not a CloudEvent: no ce-* attributes and not structured content mode")


def _from_binary(data: bytes, attrs: Mapping[str, str]) -> WebhookEvent:
    missing = [name for name in _REQUIRED if not attrs.get(name)]
    if missing:
        raise EnvelopeError(
            f"not a CloudEvent in binary content mode: {', '.join(missing)} missing"
        )
    if attrs[CE_SPECVERSION] != "1.0":
        raise EnvelopeError(f"{CE_SPECVERSION} {attrs[CE_SPECVERSION][:20]!r} is not 1.0")
    return WebhookEvent(
        id=attrs[CE_ID],
        source=_source_name(attrs[CE_SOURCE]),
        type=attrs[CE_TYPE],
        time=_time(attrs.get(CE_TIME)),
        content_type=attrs.get("content-type") or "application/octet-stream",
        data=data,
        traceparent=attrs.get(CE_TRACEPARENT) or None,
        problem=attrs.get(ATTRIBUTE_PREFIX + PROBLEM_EXTENSION) or None,
        origin=_origin(attrs.get(ATTRIBUTE_PREFIX + ORIGIN_EXTENSION)),
    )


def _from_structured(document: Mapping[str, object]) -> WebhookEvent:
    # The SDK validates the document (specversion, the required attributes); imported here: ingest
    # never decodes, and importing it would lengthen ingest's start-up.
    from cloudevents.exceptions import GenericException as CloudEventError
    from cloudevents.http import from_dict

    context = {k: v for k, v in document.items() if k not in ("data", "data_base64")}
    try:
        cloud_event = from_dict(context)
    except (CloudEventError, ValueError, TypeError, KeyError) as exc:
        raise EnvelopeError(f"not a CloudEvent in structured content mode: {exc}") from None
    traceparent = cloud_event.get("traceparent")
    problem = cloud_event.get(PROBLEM_EXTENSION)
    return WebhookEvent(
        id=str(cloud_event["id"]),
        source=_source_name(str(cloud_event["source"])),
        type=str(cloud_event["type"]),
        # Read from the document itself: the SDK fills a missing time with "now".
        time=_time(document.get("time")),
        content_type=str(cloud_event.get("datacontenttype") or "application/octet-stream"),
        data=_structured_data(document),
        traceparent=str(traceparent) if traceparent else None,
        problem=str(problem) if problem else None,
        origin=_origin(cloud_event.get(ORIGIN_EXTENSION)),
    )


def _origin(value: object) -> str:
    if value is None or value == "":
        return WEBHOOK
    if value not in ORIGINS:
        raise EnvelopeError(f"ce-{ORIGIN_EXTENSION} {str(value)[:40]!r} is not one of {ORIGINS}")
    return str(value)


def _source_name(source: str) -> str:
    if not source.startswith(SOURCE_PREFIX) or len(source) == len(SOURCE_PREFIX):
        raise EnvelopeError(f"ce-source {source[:200]!r} is not {SOURCE_PREFIX}<name>")
    return source.removeprefix(SOURCE_PREFIX)


def _time(raw: object) -> datetime:
    if not raw or not isinstance(raw, str):
        raise EnvelopeError("ce-time is missing")
    try:
        time = datetime.fromisoformat(raw)
    except ValueError:
        raise EnvelopeError(f"ce-time {raw[:80]!r} is not an RFC 3339 timestamp") from None
    if time.tzinfo is None:
        raise EnvelopeError(f"ce-time {raw!r} has no UTC offset")
    try:
        return time.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:30:00+01:00 is before year 1 in UTC
        raise EnvelopeError(f"ce-time {raw!r} is out of range") from None


def _structured_document(data: bytes) -> dict[str, object]:
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        raise EnvelopeError("structured CloudEvent is not JSON") from None
    if not isinstance(document, dict):
        raise EnvelopeError("structured CloudEvent is not a JSON object")
    return document


def _structured_data(document: Mapping[str, object]) -> bytes:
    """The event's data as bytes: ``data_base64`` decoded, text as UTF-8, JSON re-serialized."""
    if "data_base64" in document:
        try:
            return base64.b64decode(str(document["data_base64"]), validate=True)
        except ValueError:
            raise EnvelopeError("structured CloudEvent's data_base64 is not base64") from None
    data = document.get("data")
    if data is None:
        return b""
    if isinstance(data, str):
        return data.encode()
    return json.dumps(data, ensure_ascii=False).encode()
