"""Ingest's HTTP surface and its wiring.

``create_app`` builds everything once per process; ``IngestApp.handle`` is the thin translator the
functions-framework entry point calls: it turns the request into a ``WebhookRequest``, calls
:func:`accept`, then the keeper (``keeper.py``: publish, or spool when Pub/Sub does not confirm
in time), answers each error with its status (``hookpipe.errors.status_for``), and writes one
canonical log line per request.

Routes: ``POST /webhooks/{source}``, ``GET /healthz`` (liveness), ``GET /readyz`` (can publish).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from hookpipe.errors import HookpipeError, error_class, status_for
from hookpipe.http import request_headers
from hookpipe.logging import configure_logging, log_request
from hookpipe.text import is_ascii_digits
from hookpipe.tracing import new_trace, parse_trace
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from hookpipe_ingest import bootstrap
from hookpipe_ingest.accept import accept
from hookpipe_ingest.auth import WebhookRequest
from hookpipe_ingest.errors import (
    MethodNotAllowed,
    NoSuchSource,
    PayloadTooLarge,
    Unavailable,
)
from hookpipe_ingest.keeper import EventKeeper
from hookpipe_ingest.ports import EventPublisher, Spool
from hookpipe_ingest.settings import IngestSettings
from hookpipe_ingest.sources import Source, load_sources

logger = logging.getLogger("hookpipe.ingest")
WEBHOOK_PREFIX = "/webhooks/"
READY_CACHE_SECONDS = 5.0
# Bodies larger than this are authenticated and normalized on a worker thread; smaller ones (a
# LeadProsper webhook among them) inline, where a thread hop would cost more than the work
# (docs/benchmarks.md, "#19: large bodies normalized off the event loop").
INLINE_ACCEPT_BYTES = 64 * 1024


@dataclass
class _Outcome:
    status: int
    outcome: str
    source: str | None = None
    event_id: str | None = None
    bytes_in: int = 0
    reason: str | None = None
    error: BaseException | None = None
    marked: bool = False  # accepted although its body could not be understood


class IngestApp:
    def __init__(
        self,
        settings: IngestSettings,
        sources: dict[str, Source],
        publisher_factory: Callable[[], EventPublisher],
        clock: Callable[[], datetime],
        spool_factory: Callable[[], Spool] | None = None,
    ) -> None:
        self.settings = settings
        self.sources = sources
        self._publisher_factory = publisher_factory
        self._spool_factory = spool_factory
        self._publisher: EventPublisher | None = None
        self._keeper: EventKeeper | None = None
        self._clock = clock
        self._ready_cache: tuple[float, bool] | None = None  # (monotonic time asked, answer)

    @property
    def publisher(self) -> EventPublisher:
        # Created on first use, inside the serving process: gunicorn imports the app before it
        # forks its worker, and gRPC channels must not cross a fork.
        if self._publisher is None:
            self._publisher = self._publisher_factory()
        return self._publisher

    @property
    def keeper(self) -> EventKeeper:
        if self._keeper is None:
            self._keeper = EventKeeper(
                self.publisher,
                self._spool_factory() if self._spool_factory else None,
                bypass_seconds=self.settings.spool_bypass_seconds,
                retry_after_seconds=self.settings.retry_after_seconds,
            )
        return self._keeper

    async def handle(self, request: Request) -> Response:
        started = time.perf_counter()
        headers = request_headers(request.scope)
        trace = parse_trace(headers) or new_trace()
        path: str = request.scope["path"]
        if path == "/healthz":
            return JSONResponse({"status": "ok"})
        if path == "/readyz":
            pubsub = await self._pubsub_ready()
            # With a spool, webhooks are kept while Pub/Sub is down: still ready, so Cloud Run
            # can start instances during the very outage the spool is for.
            spool = self._spool_factory is not None
            body = {"status": "ok" if pubsub or spool else "unavailable", "pubsub": pubsub}
            return JSONResponse(body | {"spool": spool}, 200 if pubsub or spool else 503)
        outcome = await self._webhook(request, path, headers, trace.traceparent())
        response = self._response(outcome)
        log_request(
            logger,
            logging.ERROR if outcome.status >= 500 else logging.INFO,
            event="webhook",
            method=request.method,
            path=path,
            status=outcome.status,
            outcome=outcome.outcome,
            reason=outcome.reason,
            seconds=time.perf_counter() - started,
            project_id=self.settings.project_id,
            revision=self.settings.revision,
            trace=trace,
            http={"requestSize": str(outcome.bytes_in), "userAgent": headers.get("user-agent", "")},
            fields={
                "source": outcome.source,
                "event_id": outcome.event_id,
                "marked": outcome.marked,
                "bytes": outcome.bytes_in,
            },
            exc=outcome.error if outcome.status >= 500 else None,
        )
        return response

    async def _pubsub_ready(self) -> bool:
        """Whether the events topic is reachable, asked at most every READY_CACHE_SECONDS:
        /readyz is unauthenticated, and each ask is a Pub/Sub admin call."""
        now = time.monotonic()
        if self._ready_cache is None or now - self._ready_cache[0] >= READY_CACHE_SECONDS:
            self._ready_cache = (now, await self.publisher.ready())
        return self._ready_cache[1]

    async def _webhook(
        self, request: Request, path: str, headers: dict[str, str], traceparent: str | None
    ) -> _Outcome:
        name = path.removeprefix(WEBHOOK_PREFIX) if path.startswith(WEBHOOK_PREFIX) else None
        outcome = _Outcome(status=500, outcome="error", source=name)
        try:
            source = self.sources.get(name or "")
            if source is None:
                raise NoSuchSource(f"no webhook source at {path}")
            if request.method != "POST":
                raise MethodNotAllowed(f"{request.method} is not allowed; webhooks are POSTed")
            body = await read_body(
                request, source.config.max_body_bytes, headers.get("content-length")
            )
            outcome.bytes_in = len(body)
            webhook = WebhookRequest(
                source=source.name,
                body=body,
                headers=headers,
                query=dict(request.query_params) if request.scope["query_string"] else {},
                received_at=self._clock(),
            )
            if len(body) > INLINE_ACCEPT_BYTES:
                # Normalizing a large body (an XML body of many elements) on the event loop would
                # stall every other request meanwhile.
                event = await asyncio.to_thread(accept, source, webhook, traceparent)
            else:
                event = accept(source, webhook, traceparent)
            outcome.event_id = event.id
            kept = await self.keeper.keep(event)
        except HookpipeError as exc:  # every deliberate refusal: its message is for the sender
            outcome.status, outcome.reason, outcome.error = status_for(exc), str(exc), exc
            outcome.outcome = "unavailable" if isinstance(exc, Unavailable) else "rejected"
        except Exception as exc:
            outcome.status, outcome.outcome, outcome.reason = 500, "error", error_class(exc)
            outcome.error = exc
        else:
            outcome.status = 202
            outcome.outcome = "accepted" if kept.how == "published" else kept.how
            outcome.reason = kept.reason
            if event.problem:  # kept despite a body it could not understand: say so in the log
                outcome.marked = True
                outcome.reason = "; ".join(r for r in (event.problem, kept.reason) if r)
        return outcome

    def _response(self, outcome: _Outcome) -> Response:
        if outcome.status == 202:
            return JSONResponse({"event_id": outcome.event_id}, status_code=202)
        assert outcome.error is not None
        return response_for(outcome.error)


def response_for(exc: BaseException) -> JSONResponse:
    """The one place an error becomes ingest's answer: status and headers from its class, and
    its message when it was raised on purpose; an unexpected one is not described to the
    sender (its stack trace goes to the log line)."""
    if isinstance(exc, HookpipeError):
        body = {"error": str(exc), "status": exc.status}
        return JSONResponse(body, status_code=exc.status, headers=exc.headers())
    return JSONResponse({"error": "internal error", "status": 500}, status_code=500)


async def read_body(request: Request, limit: int, declared: str | None) -> bytes:
    """The request body, refusing with 413 as soon as it is known to exceed ``limit``: at once
    when the declared Content-Length is over it, else while streaming."""
    # isascii(): '²' passes isdigit() but not int(). (A server in front refuses such a header;
    # this must not rely on it.)
    if declared is not None and is_ascii_digits(declared) and int(declared) > limit:
        raise PayloadTooLarge(f"body of {declared} bytes is over the {limit}-byte limit")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body is over the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def create_app(
    settings: IngestSettings,
    *,
    publisher_factory: Callable[[], EventPublisher] | None = None,
    spool_factory: Callable[[], Spool] | None = None,
    sources: dict[str, Source] | None = None,
    clock: Callable[[], datetime] = _utc_now,
) -> IngestApp:
    """Wire ingest: logging, sources (with secrets), and the publisher and spool adapters
    (:mod:`hookpipe_ingest.bootstrap`'s unless given)."""
    configure_logging(settings.project_id, settings.log_level)
    if sources is None:
        sources = load_sources(settings.sources_file, os.environ)

    return IngestApp(
        settings,
        sources,
        publisher_factory or bootstrap.default_publisher(settings),
        clock,
        spool_factory or bootstrap.default_spool(settings),
    )


__all__ = ["IngestApp", "create_app", "read_body", "response_for"]
