"""Ingest's branch of the exception tree (root: :mod:`hookpipe.errors`). Each class carries the
status and headers it is answered with; ``hookpipe_ingest.app.response_for`` is the one place
that turns them into a response.

IngestError
├── RequestRejected          the request is refused; resending it unchanged is refused again
│   ├── NoSuchSource             404  no source of that name is configured
│   ├── MethodNotAllowed         405  + Allow: POST (webhooks are POSTed)
│   ├── Unauthenticated          401  missing, wrong, expired or tampered credentials
│   └── PayloadTooLarge          413  body over the source's size limit
│   (and from hookpipe.errors, for sources whose sender retries: UnsupportedMediaType 415,
│   MalformedPayload 400; for the others they mark the event instead)
├── Unavailable              503  + Retry-After: neither Pub/Sub nor the spool took the event, or
│                                 (without a spool) Pub/Sub did not confirm or ingest is shedding
│                                 load; the sender's retry is accepted exactly once
├── SpoolUnavailable         503  the spool's adapter could not write, list, read or delete
└── BadSpoolObject                an object under the spool's prefix is not a spooled message
"""

from __future__ import annotations

from hookpipe.errors import HookpipeError


class IngestError(HookpipeError):
    """Base of ingest's deliberate errors."""


class RequestRejected(IngestError):
    """The request will be refused again if resent unchanged."""


class NoSuchSource(RequestRejected):
    status = 404


class MethodNotAllowed(RequestRejected):
    status = 405

    def headers(self) -> dict[str, str]:
        return {"Allow": "POST"}


class Unauthenticated(RequestRejected):
    """Credentials missing or invalid. The message says which check failed, never a secret."""

    status = 401


class PayloadTooLarge(RequestRejected):
    status = 413


class Unavailable(IngestError):
    """The event could not be durably kept now; the sender should retry after a pause."""

    status = 503

    def __init__(self, message: str, retry_after_seconds: int = 5) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_seconds)}


class SpoolUnavailable(IngestError):
    """The spool could not take, list, read or delete an object now."""

    status = 503


class BadSpoolObject(IngestError):
    """An object under the spool's prefix is not a spooled message (left in place, reported)."""
