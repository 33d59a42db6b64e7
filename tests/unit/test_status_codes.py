"""The one place each service maps its errors to HTTP status."""

from __future__ import annotations

import pytest
from hookpipe.errors import EnvelopeError, MalformedPayload, UnsupportedMediaType
from hookpipe_ingest import errors as ingest
from hookpipe_worker import errors as worker


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (ingest.UnknownSource("x"), 404),
        (ingest.MethodNotAllowed("x"), 405),
        (ingest.Unauthenticated("x"), 401),
        (ingest.PayloadTooLarge("x"), 413),
        (UnsupportedMediaType("x"), 415),
        (MalformedPayload("x"), 400),
        (ingest.Unavailable("x"), 503),
        (RuntimeError("bug"), 500),
    ],
)
def test_ingest_status(error: BaseException, status: int) -> None:
    assert ingest.status_for(error) == status


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (worker.Overloaded("queue full"), 429),
        (worker.SinkUnavailable("postgres down"), 503),
        (worker.ShuttingDown("sigterm"), 503),
        (worker.PushUnauthorized("no token"), 401),
        (worker.PushUnauthorized("wrong account", 403), 403),
        (RuntimeError("bug"), 500),
    ],
)
def test_worker_status(error: BaseException, status: int) -> None:
    assert worker.status_for(error) == status
    assert status not in (102, 200, 201, 202, 204)  # every one of these is a nack to Pub/Sub


@pytest.mark.parametrize(
    "error",
    [
        worker.UndecodableDelivery("x"),
        worker.UnknownSource("x"),
        worker.RowRejected("bigquery", "x"),
        EnvelopeError("x"),
    ],
)
def test_permanent_failures_are_recognized(error: BaseException) -> None:
    assert isinstance(error, worker.PERMANENT)


def test_a_body_that_does_not_parse_is_not_a_permanent_failure_in_the_worker() -> None:
    """It lands marked (hookpipe.problems), so it must never be dead-lettered."""
    assert not isinstance(MalformedPayload("x"), worker.PERMANENT)
