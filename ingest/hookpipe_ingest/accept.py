"""Turn an authenticated webhook request into the event to publish. Pure: no I/O.

This is ingest's protocol core: verify credentials over the raw bytes, check and normalize the
body, derive the idempotency key and the stable event id.

Once the credentials verify, what happens to a body that cannot be understood (no, an unexpected
or an over-long Content-Type; bytes that do not parse) depends on the sender:

* it retries (``sender_retries = true``, the default): refuse with the precise 415/400, so the
  sender sees what to fix and resends;
* it never retries (LeadProsper): accept and *mark*. The event is published like any other, raw
  bytes unchanged, with ``problem`` saying what was wrong; its id comes from the idempotency
  header if the source has one, else the body's hash. Refusing would lose it for good.
"""

from __future__ import annotations

from typing import Any

from hookpipe.errors import PayloadError, UnsupportedMediaType
from hookpipe.event import WebhookEvent, event_id, idempotency_key
from hookpipe.payload import body_format, normalize

from hookpipe_ingest.auth import WebhookRequest, verify
from hookpipe_ingest.sources import Source

# The Content-Type travels as a Pub/Sub attribute (at most 1024 bytes in production); no real
# media type comes near this.
MAX_CONTENT_TYPE_BYTES = 256
# What a marked event's Content-Type becomes when the sender's cannot travel (none, or too long).
UNKNOWN_CONTENT_TYPE = "application/octet-stream"


def accept(source: Source, request: WebhookRequest, traceparent: str | None) -> WebhookEvent:
    """Authenticate ``request`` and build its event; raise ``IngestError``/``PayloadError``."""
    verify(source, request)
    content_type = request.content_type or ""
    problem: str | None = None
    payload: dict[str, Any] = {}
    try:
        if len(content_type.encode()) > MAX_CONTENT_TYPE_BYTES:
            shown = content_type[:40]
            content_type = UNKNOWN_CONTENT_TYPE
            raise UnsupportedMediaType(
                f"Content-Type {shown!r}... is over {MAX_CONTENT_TYPE_BYTES} bytes"
            )
        fmt = body_format(content_type)
        if fmt not in source.config.formats:
            accepted = ", ".join(source.config.formats)
            raise UnsupportedMediaType(f"source {source.name!r} accepts {accepted}, not {fmt}")
        payload = normalize(request.body, content_type)
    except PayloadError as exc:
        if source.config.sender_retries:
            raise
        problem = str(exc)
    key = idempotency_key(source.config.idempotency, request.headers, payload, request.body)
    return WebhookEvent(
        id=event_id(source.name, key),
        source=source.name,
        type=source.config.event_type,
        time=request.received_at,
        content_type=content_type or UNKNOWN_CONTENT_TYPE,
        data=request.body,
        traceparent=traceparent,
        problem=problem,
    )
