"""The worker's exception tree and its one mapping to HTTP status (what Pub/Sub sees).

WorkerError
├── PermanentFailure        retrying cannot fix it: dead-lettered at once with its reason,
│   │                       then acked (204) so the retry budget is not burned
│   ├── UndecodableDelivery     the push request is not a Pub/Sub message or CloudEvent
│   ├── UnknownSource           the event names a source this worker has no configuration for
│   ├── RowRejected             a sink refused this row's values even after marking (e.g.
│   │                           BigQuery per-row error, a Postgres check constraint)
│   └── (hookpipe.errors) EnvelopeError: not a hookpipe event
│   (A body or value that cannot be understood is not an error here: it lands marked,
│   hookpipe.problems.)
├── TransientFailure        answer non-2xx: Pub/Sub redelivers with backoff and dead-letters
│   │                       after max delivery attempts
│   ├── SinkUnavailable         503  a sink timed out, refused the connection or answered 5xx
│   ├── Overloaded              429  the batch queue is full: back off
│   └── ShuttingDown            503  the instance got SIGTERM
└── PushUnauthorized        401/403  the push request's OIDC token is missing or not ours
"""

from __future__ import annotations

from hookpipe.errors import EnvelopeError, HookpipeError


class WorkerError(HookpipeError):
    """Base of the worker's deliberate errors."""


class PermanentFailure(WorkerError):
    """Retrying cannot fix this message."""


class UndecodableDelivery(PermanentFailure):
    pass


class UnknownSource(PermanentFailure):
    pass


class RowRejected(PermanentFailure):
    def __init__(self, sink: str, message: str) -> None:
        super().__init__(f"{sink} rejected the row: {message}")
        self.sink = sink


class TransientFailure(WorkerError):
    """Retrying later may succeed."""


class SinkUnavailable(TransientFailure):
    pass


class Overloaded(TransientFailure):
    pass


class ShuttingDown(TransientFailure):
    pass


class PushUnauthorized(WorkerError):
    def __init__(self, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.status = status


PERMANENT: tuple[type[BaseException], ...] = (PermanentFailure, EnvelopeError)


def status_for(exc: BaseException) -> int:
    """The HTTP status answered for ``exc``. Pub/Sub treats anything but 102/200/201/202/204 as
    a nack; permanent failures are answered 204 *after* they are dead-lettered, not here."""
    if isinstance(exc, PushUnauthorized):
        return exc.status
    if isinstance(exc, Overloaded):
        return 429
    if isinstance(exc, SinkUnavailable | ShuttingDown):
        return 503
    return 500


def error_class(exc: BaseException) -> str:
    """The dead-letter reason's error class: the exception's name."""
    return type(exc).__name__
