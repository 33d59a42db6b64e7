"""Tiny fakes for in-process ingest tests (the real publisher is tested on the real emulator)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from hookpipe.event import WebhookEvent
from hookpipe_ingest.app import IngestApp, create_app
from hookpipe_ingest.errors import Unavailable
from hookpipe_ingest.settings import IngestSettings
from hookpipe_ingest.sources import load_sources
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

    async def publish(self, event: WebhookEvent) -> str:
        if self.fail:
            raise Unavailable("Pub/Sub did not confirm within 5 s", 7)
        self.published.append(event)
        return str(len(self.published))

    async def ready(self) -> bool:
        return not self.fail


def ingest_app(publisher: RecordingPublisher) -> IngestApp:
    settings = IngestSettings(project_id="test", sources_file=REPO / "infra/sources.toml")
    sources = load_sources(settings.sources_file, {"HOOKPIPE_LEADPROSPER_TOKENS": TOKEN})
    return create_app(
        settings, publisher_factory=lambda: publisher, sources=sources, clock=lambda: NOW
    )


def asgi(app: IngestApp) -> Starlette:
    """The same routing functions-framework gives the function: every path, every method."""
    return Starlette(routes=[Route("/{path:path}", app.handle, methods=METHODS)])
