"""The worker's branch of the exception tree (root: :mod:`hookpipe.errors`). Each class carries
the status it is answered with (what Pub/Sub sees: anything but 102/200/201/202/204 is a nack);
``hookpipe_worker.app.response_for`` is the one place that turns them into a response.

WorkerError
├── PermanentFailure        retrying cannot fix it: dead-lettered at once with its reason, then
│   │                       answered 204 so the retry budget is not burned
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
│   │   └── SinkInterrupted         the connection was lost or refused, the server is restarting,
│   │                               a deadlock: the writer tries the batch again, with backoff
│   ├── Overloaded              429  the batch queue is full: back off
│   ├── ShuttingDown            503  the instance got SIGTERM
│   └── PushAuthUnavailable     503  Google's certificates could not be fetched to check a token
├── PushUnauthorized        401  the push request's OIDC token is missing or invalid
│   └── PushForbidden           403  the token is valid but not from the push service account
└── RouteError                  the request is not a push this worker serves
    ├── RouteNotFound           404
    └── PushMethodNotAllowed    405  + Allow: POST
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

    status = 503


class SinkUnavailable(TransientFailure):
    pass


class SinkInterrupted(SinkUnavailable):
    """A passing interruption (a lost or refused connection, a restart, a deadlock): worth trying
    the batch again on a fresh connection, with backoff, before answering 503."""


class Overloaded(TransientFailure):
    status = 429


class ShuttingDown(TransientFailure):
    pass


class PushAuthUnavailable(TransientFailure):
    """A token could not be checked now (Google's certificates unreachable): not the sender's
    fault, so Pub/Sub should retry rather than treat the push as refused."""


class PushUnauthorized(WorkerError):
    status = 401


class PushForbidden(PushUnauthorized):
    status = 403


class RouteError(WorkerError):
    """Not a push this worker serves."""


class RouteNotFound(RouteError):
    status = 404


class PushMethodNotAllowed(RouteError):
    status = 405

    def headers(self) -> dict[str, str]:
        return {"Allow": "POST"}


PERMANENT: tuple[type[BaseException], ...] = (PermanentFailure, EnvelopeError)
