"""The one place each service maps its errors to HTTP status."""

from __future__ import annotations

import pytest
from hookpipe.errors import EnvelopeError, MalformedPayload, UnsupportedMediaType, status_for
from hookpipe_ingest import errors as ingest
from hookpipe_worker import errors as worker


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (ingest.NoSuchSource("x"), 404),
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
    assert status_for(error) == status


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (worker.Overloaded("queue full"), 429),
        (worker.SinkUnavailable("postgres down"), 503),
        (worker.ShuttingDown("sigterm"), 503),
        (worker.PushUnauthorized("no token"), 401),
        (worker.PushForbidden("wrong account"), 403),
        (worker.PushAuthUnavailable("certificates unreachable"), 503),
        (worker.RouteNotFound("x"), 404),
        (worker.PushMethodNotAllowed("x"), 405),
        (RuntimeError("bug"), 500),
    ],
)
def test_worker_status(error: BaseException, status: int) -> None:
    assert status_for(error) == status
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


def test_every_exception_hookpipe_defines_is_in_the_one_tree() -> None:
    """No deliberate error outside HookpipeError: each one's status and headers are on its
    class, and the services' response_for handles exactly this tree."""
    import importlib
    import inspect
    import pkgutil

    from hookpipe.errors import HookpipeError

    outside = []
    for package in ("hookpipe", "hookpipe_ingest", "hookpipe_worker", "hookpipe_ops"):
        root = importlib.import_module(package)
        for module_info in pkgutil.walk_packages(root.__path__, f"{package}."):
            module = importlib.import_module(module_info.name)
            for name, cls in inspect.getmembers(module, inspect.isclass):
                defined_here = cls.__module__ == module.__name__
                deliberate = defined_here and issubclass(cls, BaseException)
                if deliberate and not issubclass(cls, HookpipeError):
                    outside.append(f"{module.__name__}.{name}")
    assert outside == []


def test_headers_travel_with_their_error() -> None:
    assert ingest.MethodNotAllowed("x").headers() == {"Allow": "POST"}
    assert ingest.Unavailable("x", 9).headers() == {"Retry-After": "9"}
    assert worker.PushMethodNotAllowed("x").headers() == {"Allow": "POST"}
    assert worker.SinkUnavailable("x").headers() == {}
