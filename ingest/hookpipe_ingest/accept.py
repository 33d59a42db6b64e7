"""Turn an authenticated webhook request into the event to publish. Pure: no I/O.

This is ingest's protocol core: verify credentials over the raw bytes, check and normalize the
body, derive the idempotency key and the stable event id.
"""

from __future__ import annotations

import hashlib
from typing import Any

from hookpipe.errors import UnsupportedMediaType
from hookpipe.event import WebhookEvent, event_id
from hookpipe.payload import body_format, normalize
from hookpipe.sources import IdempotencyRule

from hookpipe_ingest.auth import WebhookRequest, verify
from hookpipe_ingest.sources import Source


def accept(source: Source, request: WebhookRequest, traceparent: str | None) -> WebhookEvent:
    """Authenticate ``request`` and build its event; raise ``IngestError``/``PayloadError``."""
    verify(source, request)
    fmt = body_format(request.content_type)
    if fmt not in source.config.formats:
        accepted = ", ".join(source.config.formats)
        raise UnsupportedMediaType(f"source {source.name!r} accepts {accepted}, not {fmt}")
    payload = normalize(request.body, request.content_type)
    key = idempotency_key(source.config.idempotency, request, payload)
    return WebhookEvent(
        id=event_id(source.name, key),
        source=source.name,
        type=source.config.event_type,
        time=request.received_at,
        content_type=request.content_type,
        data=request.body,
        traceparent=traceparent,
    )


def idempotency_key(rule: IdempotencyRule, request: WebhookRequest, payload: dict[str, Any]) -> str:
    """The key that makes a resent webhook map to the same event id (see ``IdempotencyRule``)."""
    if rule.header is not None:
        value = request.headers.get(rule.header.lower(), "").strip()
        if value:
            return f"header:{value}"
    if rule.fields:
        values = [payload.get(field) for field in rule.fields]
        if all(isinstance(v, str | int) and str(v) != "" for v in values):
            return "fields:" + "\x1f".join(str(v) for v in values)
    return "sha256:" + hashlib.sha256(request.body).hexdigest()
