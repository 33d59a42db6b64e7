"""The worker's HTTP surface: routes, push authentication, one canonical log line per request.

``WorkerApp.handle`` is the thin translator: a push request becomes a ``Push`` for the use case
(``hookpipe_worker.process``), its ``Outcome`` the status Pub/Sub reads, errors mapped to statuses
in one place (:func:`response_for`). ``create_app`` is the composition root: the adapters, the
group-commit batcher and the use case are built there (``hookpipe_worker.bootstrap``), inside the
serving process on first use.

Routes: ``POST /pubsub/push`` (events), ``POST /pubsub/dead-letters`` (the dead-letter archive:
hookpipe_worker.sinks.archive), ``GET /healthz``, ``GET /readyz``.

Outcomes: 204 committed (both sinks, marked where something could not be understood) · 204
dead-lettered (permanent failure, published to the dead-letter topic with its reason first) · 204
archived · 429/503/500 retry (Pub/Sub redelivers with backoff).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from types import FrameType

from hookpipe.errors import HookpipeError, error_class, status_for
from hookpipe.http import request_headers
from hookpipe.logging import configure_logging, log_request, redact
from hookpipe.sources import load_source_configs
from hookpipe.tracing import parse_trace
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from hookpipe_worker import bootstrap
from hookpipe_worker.bootstrap import Adapters, Runtime
from hookpipe_worker.errors import (
    PushMethodNotAllowed,
    RouteNotFound,
    ShuttingDown,
)
from hookpipe_worker.process import Outcome, Processor, Push
from hookpipe_worker.pushauth import NoPushAuth, OidcPushAuth, PushAuthenticator
from hookpipe_worker.settings import WorkerSettings, database_url_secrets

logger = logging.getLogger("hookpipe.worker")

type UseCase = Callable[[Processor, Push], Awaitable[Outcome]]


class WorkerApp:
    def __init__(
        self,
        settings: WorkerSettings,
        start: Callable[[], Awaitable[Runtime]],
        push_auth: PushAuthenticator,
    ) -> None:
        self.settings = settings
        self._start = start
        self._push_auth = push_auth
        self._runtime: Runtime | None = None
        self._start_lock: asyncio.Lock | None = None
        self._draining = False
        self._drain_task: asyncio.Task[None] | None = None

    async def runtime(self) -> Runtime:
        """Start the worker in the serving process's event loop (once)."""
        if self._runtime is not None:
            return self._runtime
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            if self._runtime is None:
                self._runtime = await self._start()
                self._install_sigterm_drain()
        return self._runtime

    def _install_sigterm_drain(self) -> None:
        """On SIGTERM (Cloud Run gives ~10 s), stop taking work and flush what is queued, then let
        the server's own handler stop it; in-flight requests get their real outcome."""
        loop = asyncio.get_running_loop()
        try:
            previous = signal.getsignal(signal.SIGTERM)
        except ValueError:  # not the main thread (in-process tests): nothing to chain
            return

        def drain() -> None:
            if self._runtime is not None:
                self._drain_task = loop.create_task(self._runtime.batcher.close())

        def on_sigterm(signum: int, frame: FrameType | None) -> None:
            self._draining = True
            loop.call_soon_threadsafe(drain)
            if callable(previous):
                previous(signum, frame)

        try:
            signal.signal(signal.SIGTERM, on_sigterm)
        except ValueError:
            return

    async def handle(self, request: Request) -> Response:
        path: str = request.scope["path"]
        if path == "/healthz":
            return JSONResponse({"status": "ok"})
        if path == "/readyz":
            runtime = await self.runtime()
            ok = await runtime.adapters.ready() and not self._draining
            body = {"status": "ok" if ok else "unavailable", "queued_rows": runtime.batcher.queued}
            return JSONResponse(body, 200 if ok else 503)
        if path == self.settings.push_path:
            return await self._answer(request, path, Processor.process, event="push")
        if path == self.settings.archive_path:
            return await self._answer(request, path, Processor.archive, event="dead_letter")
        return response_for(RouteNotFound(f"no route {path}"))

    async def _answer(
        self, request: Request, path: str, use_case: UseCase, *, event: str
    ) -> Response:
        """Admit the push, run ``use_case`` on it; one canonical log line; the status Pub/Sub
        reads."""
        if request.method != "POST":
            return response_for(PushMethodNotAllowed("push requests are POSTed"))
        started = time.perf_counter()
        headers = request_headers(request.scope)
        try:
            runtime = await self._admit(headers)
            outcome = await use_case(runtime.processor, Push(await request.body(), headers))
        except Exception as exc:  # not admitted (draining, a bad token), or the body was lost
            outcome = Outcome("retry", reason=f"{error_class(exc)}: {exc}", error=exc)
        status = 204 if outcome.error is None else status_for(outcome.error)
        trace = parse_trace({"traceparent": outcome.traceparent}) if outcome.traceparent else None
        log_request(
            logger,
            logging.ERROR
            if status >= 500 and status != 503
            else logging.WARNING
            if status >= 400 or outcome.result == "dead-lettered"
            else logging.INFO,
            event=event,
            method="POST",
            path=path,
            status=status,
            outcome=outcome.result,
            reason=outcome.reason,
            seconds=time.perf_counter() - started,
            project_id=self.settings.project_id,
            revision=self.settings.revision,
            trace=trace or parse_trace(headers),
            fields={
                "event_id": outcome.event_id,
                "source": outcome.source,
                "message_id": outcome.message_id,
                "delivery_attempt": outcome.delivery_attempt,
            },
            exc=outcome.error if status == 500 else None,
        )
        if outcome.error is None:
            return Response(status_code=204)
        return response_for(outcome.error)

    async def _admit(self, headers: Mapping[str, str]) -> Runtime:
        """What every push goes through first: not while draining, only with a valid token."""
        if self._draining:
            raise ShuttingDown("instance is shutting down")
        await self._push_auth.verify(headers)
        return await self.runtime()


def response_for(exc: BaseException) -> JSONResponse:
    """The one place an error becomes the worker's answer (what Pub/Sub sees): status and headers
    from its class, the error class and message in the body; 500 for anything unexpected."""
    status = status_for(exc)
    headers = exc.headers() if isinstance(exc, HookpipeError) else {}
    body = {"error": f"{error_class(exc)}: {exc}", "status": status}
    return JSONResponse(body, status_code=status, headers=headers)


def create_app(
    settings: WorkerSettings,
    *,
    adapters_factory: Callable[[], Adapters] | None = None,
    push_auth: PushAuthenticator | None = None,
) -> WorkerApp:
    """Wire the worker: logging, push authentication, and how it starts in its serving process
    (the adapters, then the batcher and the use case on them)."""
    configure_logging(settings.project_id, settings.log_level)
    redact(database_url_secrets(settings.database_url.get_secret_value()))
    if push_auth is None:
        if settings.push_auth == "none":
            push_auth = NoPushAuth()
        else:
            assert settings.push_audience
            assert settings.push_service_account
            push_auth = OidcPushAuth(settings.push_audience, settings.push_service_account)
    sources = load_source_configs(settings.sources_file)
    make_adapters = adapters_factory or partial(bootstrap.default_adapters, settings, sources)

    async def start() -> Runtime:
        return await bootstrap.start(settings, sources, make_adapters())

    return WorkerApp(settings, start, push_auth)
