"""Ingest's exception tree and its one mapping to HTTP status.

IngestError
├── RequestRejected          the sender's request is wrong; retrying it unchanged will not help
│   ├── UnknownSource            404  no source of that name is configured
│   ├── MethodNotAllowed         405  webhooks are POSTed
│   ├── Unauthenticated          401  missing, wrong, expired or tampered credentials
│   ├── PayloadTooLarge          413  body over the source's size limit
│   ├── UnsupportedMediaType     415  (hookpipe.errors) content type the source does not accept
│   └── MalformedPayload         400  (hookpipe.errors) body does not parse
└── Unavailable              503 + Retry-After: Pub/Sub did not confirm in time, or ingest is
                              shedding load; the sender's retry will be accepted exactly once
"""

from __future__ import annotations

from hookpipe.errors import HookpipeError, MalformedPayload, UnsupportedMediaType


class IngestError(HookpipeError):
    """Base of ingest's deliberate errors."""


class RequestRejected(IngestError):
    """The request will be refused again if resent unchanged."""


class UnknownSource(RequestRejected):
    pass


class MethodNotAllowed(RequestRejected):
    pass


class Unauthenticated(RequestRejected):
    """Credentials missing or invalid. The message says which check failed, never a secret."""


class PayloadTooLarge(RequestRejected):
    pass


class Unavailable(IngestError):
    """The event could not be durably accepted now; the sender should retry after a pause."""

    def __init__(self, message: str, retry_after_seconds: int = 5) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


_STATUS: tuple[tuple[type[BaseException], int], ...] = (
    (UnknownSource, 404),
    (MethodNotAllowed, 405),
    (Unauthenticated, 401),
    (PayloadTooLarge, 413),
    (UnsupportedMediaType, 415),
    (MalformedPayload, 400),
    (Unavailable, 503),
)


def status_for(exc: BaseException) -> int:
    """The HTTP status for ``exc``; anything unexpected is a 500 (never a 2xx)."""
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 500
