"""Tiny fakes for in-process ingest tests (the real publisher is tested on the real emulator)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from hookpipe.event import WebhookEvent
from hookpipe.sources import SourceConfig
from hookpipe_ingest.app import IngestApp, create_app
from hookpipe_ingest.errors import SpoolUnavailable, Unavailable
from hookpipe_ingest.settings import IngestSettings
from hookpipe_ingest.sources import load_sources, resolve_secrets
from starlette.applications import Starlette
from starlette.routing import Route

REPO = Path(__file__).resolve().parents[1]
TOKEN = "test-token-0123456789abcdef"
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
METHODS = ["GET", "POST", "PUT", "DELETE", "OPTIONS", "HEAD", "PATCH"]


class RecordingPublisher:
    def __init__(self, fail: bool = False) -> None:
        self.published: list[WebhookEvent] = []
        self.fail = fail
        self.readiness_checks = 0

    async def publish(self, event: WebhookEvent) -> str:
        if self.fail:
            raise Unavailable("Pub/Sub did not confirm within 5 s", 7)
        self.published.append(event)
        return str(len(self.published))

    async def ready(self) -> bool:
        self.readiness_checks += 1
        return not self.fail


class RecordingSpool:
    def __init__(self, down: bool = False) -> None:
        self.objects: dict[str, tuple[bytes, dict[str, str]]] = {}
        self.down = down

    async def put(self, event_id: str, data: bytes, attributes: Mapping[str, str]) -> None:
        if self.down:
            raise SpoolUnavailable("spool write failed: ServiceUnavailable")
        self.objects.setdefault(event_id, (data, dict(attributes)))


# A source whose sender retries (the default): it keeps the precise 400/415 refusals.
RETRYING_SOURCE = SourceConfig.model_validate(
    {
        "event_type": "com.example.retrying",
        "formats": ["json"],
        "auth": {"scheme": "token", "secret_env": "HOOKPIPE_RETRYING_TOKENS"},
    }
)


def ingest_app(publisher: RecordingPublisher, spool: RecordingSpool | None = None) -> IngestApp:
    """Ingest with the real sources file (LeadProsper: never retries) plus ``retrying``."""
    settings = IngestSettings(project_id="test", sources_file=REPO / "infra/sources.toml")
    environ = {"HOOKPIPE_LEADPROSPER_TOKENS": TOKEN, "HOOKPIPE_RETRYING_TOKENS": TOKEN}
    sources = load_sources(settings.sources_file, environ)
    sources["retrying"] = resolve_secrets("retrying", RETRYING_SOURCE, environ)
    return create_app(
        settings,
        publisher_factory=lambda: publisher,
        spool_factory=(lambda: spool) if spool is not None else None,
        sources=sources,
        clock=lambda: NOW,
    )


def asgi(app: IngestApp) -> Starlette:
    """The same routing functions-framework gives the function: every path, every method."""
    return Starlette(routes=[Route("/{path:path}", app.handle, methods=METHODS)])
