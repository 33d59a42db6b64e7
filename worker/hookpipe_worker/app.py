"""The worker's HTTP surface and its wiring.

``create_app`` builds the adapters (Postgres pool, BigQuery client, dead-letter publisher, push
authenticator); they are opened inside the serving process on first use. ``WorkerApp.handle`` is
the thin translator: push request → ``Delivery`` → event → row → group commit, errors mapped to
statuses in one place (``errors.status_for``), one canonical log line per request.

Routes: ``POST /pubsub/push`` (events), ``POST /pubsub/dead-letters`` (the dead-letter archive:
hookpipe_worker.archive), ``GET /healthz``, ``GET /readyz``.

Outcomes: 204 committed (both sinks, marked where something could not be understood) · 204
dead-lettered (permanent failure, published to the dead-letter topic with its reason first) · 204
archived · 429/503/500 retry (Pub/Sub redelivers with backoff).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import FrameType

from hookpipe.batching import BatchPolicy, MicroBatcher
from hookpipe.bigquery import bigquery_client
from hookpipe.errors import HookpipeError
from hookpipe.event import from_message
from hookpipe.http import request_headers
from hookpipe.logging import configure_logging, log_event, log_request
from hookpipe.sources import SourceConfig, load_source_configs
from hookpipe.tracing import TraceContext, parse_trace
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from hookpipe_worker.archive import ArchiveSink, DeadLetterArchive, archive_record
from hookpipe_worker.deadletter import DeadLetterSink, PubSubDeadLetters
from hookpipe_worker.delivery import Delivery, decode_delivery
from hookpipe_worker.errors import (
    PERMANENT,
    Overloaded,
    PushMethodNotAllowed,
    RouteNotFound,
    ShuttingDown,
    UndecodableDelivery,
    WorkerError,
    error_class,
    status_for,
)
from hookpipe_worker.pushauth import NoPushAuth, OidcPushAuth, PushAuthenticator
from hookpipe_worker.rows import EventRow, build_row
from hookpipe_worker.settings import WorkerSettings
from hookpipe_worker.sinks.bigquery import BigQuerySink
from hookpipe_worker.sinks.postgres import PostgresSink, create_pool
from hookpipe_worker.writer import BatchWriter, RowWriter

logger = logging.getLogger("hookpipe.worker")


@dataclass
class Adapters:
    """The worker's I/O, created once per process."""

    writer: RowWriter
    dead_letters: DeadLetterSink
    open: Callable[[], Awaitable[None]]
    ready: Callable[[], Awaitable[bool]]
    archive: ArchiveSink


@dataclass
class _Outcome:
    status: int = 500
    outcome: str = "error"
    event_id: str | None = None
    source: str | None = None
    message_id: str | None = None
    delivery_attempt: int | None = None
    reason: str | None = None
    error: BaseException | None = None


class WorkerApp:
    def __init__(
        self,
        settings: WorkerSettings,
        sources: Mapping[str, SourceConfig],
        adapters_factory: Callable[[], Adapters],
        push_auth: PushAuthenticator,
    ) -> None:
        self.settings = settings
        self.sources = sources
        self._adapters_factory = adapters_factory
        self._push_auth = push_auth
        self._adapters: Adapters | None = None
        self._committer: MicroBatcher[EventRow, None] | None = None
        self._start_lock: asyncio.Lock | None = None
        self._draining = False
        self._drain_task: asyncio.Task[None] | None = None

    async def start(self) -> tuple[Adapters, MicroBatcher[EventRow, None]]:
        """Open the adapters in the serving process's event loop (once)."""
        if self._adapters is not None and self._committer is not None:
            return self._adapters, self._committer
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            if self._adapters is None or self._committer is None:
                adapters = self._adapters_factory()
                await adapters.open()
                s = self.settings
                policy = BatchPolicy(
                    max_items=s.batch_max_rows,
                    max_bytes=s.batch_max_bytes,
                    max_delay=s.batch_max_delay_ms / 1000,
                    max_concurrent=s.batch_max_concurrent,
                    max_queued=s.batch_max_queued,
                )
                writer = adapters.writer

                async def commit(rows: Sequence[EventRow]) -> list[WorkerError | None]:
                    results = await writer.commit(rows)
                    return [results[row.event_id] for row in rows]

                self._committer = MicroBatcher(
                    commit,
                    policy,
                    size=lambda row: row.size,
                    overloaded=lambda queued: Overloaded(f"{queued} rows already queued"),
                    closed=lambda: ShuttingDown("instance is shutting down"),
                    on_batch=self._log_batch,
                )
                self._adapters = adapters
                self._install_sigterm_drain()
        assert self._adapters is not None
        assert self._committer is not None
        return self._adapters, self._committer

    def _install_sigterm_drain(self) -> None:
        """On SIGTERM (Cloud Run gives ~10 s), stop taking work and flush what is queued, then let
        the server's own handler stop it; in-flight requests get their real outcome."""
        loop = asyncio.get_running_loop()
        try:
            previous = signal.getsignal(signal.SIGTERM)
        except ValueError:  # not the main thread (in-process tests): nothing to chain
            return

        def drain() -> None:
            if self._committer is not None:
                self._drain_task = loop.create_task(self._committer.close())

        def on_sigterm(signum: int, frame: FrameType | None) -> None:
            self._draining = True
            loop.call_soon_threadsafe(drain)
            if callable(previous):
                previous(signum, frame)

        try:
            signal.signal(signal.SIGTERM, on_sigterm)
        except ValueError:
            return

    def _log_batch(self, rows: int, seconds: float) -> None:
        log_event(
            logger,
            logging.INFO,
            f"batch of {rows} committed in {seconds * 1000:.1f} ms",
            project_id=self.settings.project_id,
            fields={"event": "batch", "batch_rows": rows, "batch_ms": round(seconds * 1000, 3)},
        )

    async def handle(self, request: Request) -> Response:
        path: str = request.scope["path"]
        if path == "/healthz":
            return JSONResponse({"status": "ok"})
        if path == "/readyz":
            adapters, committer = await self.start()
            ok = await adapters.ready() and not self._draining
            body = {"status": "ok" if ok else "unavailable", "queued_rows": committer.queued}
            return JSONResponse(body, 200 if ok else 503)
        if path == self.settings.push_path:
            return await self._answer(request, path, self._push, event="push")
        if path == self.settings.archive_path:
            return await self._answer(request, path, self._archive, event="dead_letter")
        return response_for(RouteNotFound(f"no route {path}"))

    async def _answer(
        self,
        request: Request,
        path: str,
        handler: Callable[[Request], Awaitable[tuple[_Outcome, TraceContext | None]]],
        *,
        event: str,
    ) -> Response:
        """Run a push handler; one canonical log line; the status Pub/Sub reads."""
        if request.method != "POST":
            return response_for(PushMethodNotAllowed("push requests are POSTed"))
        started = time.perf_counter()
        outcome, trace = await handler(request)
        log_request(
            logger,
            logging.ERROR
            if outcome.status >= 500 and outcome.status != 503
            else logging.WARNING
            if outcome.status >= 400 or outcome.outcome == "dead-lettered"
            else logging.INFO,
            event=event,
            method="POST",
            path=path,
            status=outcome.status,
            outcome=outcome.outcome,
            reason=outcome.reason,
            seconds=time.perf_counter() - started,
            project_id=self.settings.project_id,
            revision=self.settings.revision,
            trace=trace,
            fields={
                "event_id": outcome.event_id,
                "source": outcome.source,
                "message_id": outcome.message_id,
                "delivery_attempt": outcome.delivery_attempt,
            },
            exc=outcome.error if outcome.status == 500 else None,
        )
        if outcome.status == 204:
            return Response(status_code=204)
        assert outcome.error is not None
        return response_for(outcome.error)

    async def _admit(
        self, headers: Mapping[str, str]
    ) -> tuple[Adapters, MicroBatcher[EventRow, None]]:
        """What every push goes through first: not while draining, only with a valid token."""
        if self._draining:
            raise ShuttingDown("instance is shutting down")
        await self._push_auth.verify(headers)
        return await self.start()

    async def _archive(self, request: Request) -> tuple[_Outcome, TraceContext | None]:
        """Archive one dead letter, whatever it holds (hookpipe_worker.archive)."""
        outcome = _Outcome()
        headers = request_headers(request.scope)
        trace = parse_trace(headers)
        try:
            adapters, _ = await self._admit(headers)
            body = await request.body()
            try:
                delivery = decode_delivery(body, headers)
            except UndecodableDelivery:  # kept as it came: the archive refuses nothing
                delivery = Delivery(data=body, attributes={})
            record = archive_record(delivery, datetime.now(UTC))
            outcome.message_id, outcome.event_id = record.dead_letter_id, record.event_id
            outcome.source, outcome.reason = record.source, record.error_class
            await adapters.archive.write(record)
            outcome.status, outcome.outcome = 204, "archived"
        except Exception as exc:
            outcome.status, outcome.outcome = status_for(exc), "retry"
            outcome.reason = f"{error_class(exc)}: {exc}"
            outcome.error = exc
        return outcome, trace

    async def _push(self, request: Request) -> tuple[_Outcome, TraceContext | None]:
        outcome = _Outcome()
        headers = request_headers(request.scope)
        trace = parse_trace(headers)
        delivery: Delivery | None = None
        try:
            adapters, committer = await self._admit(headers)
            body = await request.body()
            try:
                delivery = decode_delivery(body, headers)
                outcome.message_id = delivery.message_id
                outcome.delivery_attempt = delivery.delivery_attempt
                event = from_message(delivery.data, delivery.attributes)
                outcome.event_id, outcome.source = event.id, event.source
                if event.traceparent:
                    trace = parse_trace({"traceparent": event.traceparent}) or trace
                row = build_row(event, delivery, self.sources)
                await committer.submit(row)
            except PERMANENT as exc:
                failed = delivery or Delivery(data=body, attributes={})
                await adapters.dead_letters.publish(failed, exc)
                outcome.status, outcome.outcome = 204, "dead-lettered"
                outcome.reason = f"{error_class(exc)}: {exc}"
            else:
                outcome.status, outcome.outcome = 204, "committed"
        except Exception as exc:
            outcome.status, outcome.outcome = status_for(exc), "retry"
            outcome.reason = f"{error_class(exc)}: {exc}"
            outcome.error = exc
        return outcome, trace


def response_for(exc: BaseException) -> JSONResponse:
    """The one place an error becomes the worker's answer (what Pub/Sub sees): status and headers
    from its class, the error class and message in the body; 500 for anything unexpected."""
    status = status_for(exc)
    headers = exc.headers() if isinstance(exc, HookpipeError) else {}
    body = {"error": f"{error_class(exc)}: {exc}", "status": status}
    return JSONResponse(body, status_code=status, headers=headers)


def _default_adapters(settings: WorkerSettings, sources: Mapping[str, SourceConfig]) -> Adapters:
    pool = create_pool(
        settings.database_url.get_secret_value(),
        min_size=settings.pool_min_size,
        max_size=settings.pool_max_size,
        timeout=settings.pool_timeout_seconds,
        sslmode=settings.database_sslmode,
        sslrootcert=str(settings.database_sslrootcert) if settings.database_sslrootcert else None,
    )
    bq_client = bigquery_client(settings.project_id, settings.bigquery_endpoint)
    postgres = PostgresSink(pool)
    bq = BigQuerySink(bq_client, settings.bigquery_table_id, settings.bigquery_timeout_seconds)
    dead_letters = PubSubDeadLetters(
        settings.project_id,
        settings.dead_letter_topic,
        settings.revision,
        settings.dead_letter_timeout_seconds,
    )

    async def open_() -> None:
        # Does not wait for min_size connections: a Postgres outage must not stop the worker
        # from answering (503) and dead-lettering.
        await pool.open(wait=False)

    async def ready() -> bool:
        return await postgres.ready()

    def on_retry(attempt: int, exc: BaseException, delay: float) -> None:
        log_event(
            logger,
            logging.WARNING,
            f"batch attempt {attempt} failed, trying again in {delay:g} s",
            project_id=settings.project_id,
            fields={
                "event": "batch_retry",
                "attempt": attempt,
                "reason": f"{error_class(exc)}: {exc}",
                "retry_in_seconds": delay,
            },
        )

    writer = BatchWriter(
        postgres, bq, sources, retry_seconds=settings.postgres_retry_seconds, on_retry=on_retry
    )
    archive = DeadLetterArchive(
        pool, bq_client, settings.bigquery_dead_letters_table_id, settings.bigquery_timeout_seconds
    )
    return Adapters(writer, dead_letters, open_, ready, archive)


def create_app(
    settings: WorkerSettings,
    *,
    adapters_factory: Callable[[], Adapters] | None = None,
    push_auth: PushAuthenticator | None = None,
) -> WorkerApp:
    """Wire the worker: logging, push authentication and (lazily) the sink adapters."""
    configure_logging(settings.project_id, settings.log_level)
    if push_auth is None:
        if settings.push_auth == "none":
            push_auth = NoPushAuth()
        else:
            assert settings.push_audience
            assert settings.push_service_account
            push_auth = OidcPushAuth(settings.push_audience, settings.push_service_account)
    sources = load_source_configs(settings.sources_file)
    return WorkerApp(
        settings,
        sources,
        adapters_factory or (lambda: _default_adapters(settings, sources)),
        push_auth,
    )
