"""Tiny fakes for in-process ingest tests (the real publisher is tested on the real emulator)."""

from __future__ import annotations

import base64
import hashlib
import hmac
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


# One source per signing scheme, all with SIGNING_SECRET: Standard Webhooks, Stripe-style
# (t=…,v1=… over "t.body"), GitHub-style (a prefixed hex HMAC of the body), and an HMAC whose
# timestamp travels in a header of its own.
SIGNING_SECRET = "whsec_" + base64.b64encode(b"fuzz-secret-0123456789abcdef").decode()
SIGNING_SOURCES = {
    name: SourceConfig.model_validate(
        {
            "event_type": f"com.example.{name}",
            "formats": ["json", "form", "xml"],
            "idempotency": {"header": "webhook-id"} if name == "standard" else {},
            "auth": {"secret_env": f"HOOKPIPE_{name.upper()}_SECRETS", **auth},
        }
    )
    for name, auth in {
        "standard": {"scheme": "standard-webhooks"},
        "stripe": {
            "scheme": "hmac",
            "signature_header": "Stripe-Signature",
            "signature_key": "v1",
            "timestamp_key": "t",
        },
        "github": {
            "scheme": "hmac",
            "signature_header": "X-Hub-Signature-256",
            "prefix": "sha256=",
        },
        "timed": {
            "scheme": "hmac",
            "signature_header": "X-Signature",
            "encoding": "base64",
            "timestamp_header": "X-Signature-Timestamp",
        },
    }.items()
}


def signature_headers(source: str, body: bytes, timestamp: int) -> dict[str, str]:
    """Valid credentials for one of ``SIGNING_SOURCES``."""
    if source == "standard":
        key = base64.b64decode(SIGNING_SECRET.removeprefix("whsec_"))
        signed = f"fuzz-id.{timestamp}.".encode() + body
        mac = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        return {"webhook-id": "fuzz-id", "webhook-timestamp": str(timestamp),
                "webhook-signature": f"v1,{mac}"}  # fmt: skip
    secret = SIGNING_SECRET.encode()
    if source == "github":
        return {"X-Hub-Signature-256": "sha256=" + hmac.new(secret, body, "sha256").hexdigest()}
    mac_bytes = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).digest()
    if source == "stripe":
        return {"Stripe-Signature": f"t={timestamp},v1={mac_bytes.hex()}"}
    return {"X-Signature": base64.b64encode(mac_bytes).decode(),
            "X-Signature-Timestamp": str(timestamp)}  # fmt: skip


def ingest_app(publisher: RecordingPublisher, spool: RecordingSpool | None = None) -> IngestApp:
    """Ingest with the real sources file (LeadProsper: never retries) plus ``retrying`` and the
    ``SIGNING_SOURCES``."""
    settings = IngestSettings(project_id="test", sources_file=REPO / "infra/sources.toml")
    environ = {"HOOKPIPE_LEADPROSPER_TOKENS": TOKEN, "HOOKPIPE_RETRYING_TOKENS": TOKEN}
    environ |= {c.auth.secret_env: SIGNING_SECRET for c in SIGNING_SOURCES.values()}
    sources = load_sources(settings.sources_file, environ)
    sources["retrying"] = resolve_secrets("retrying", RETRYING_SOURCE, environ)
    for name, config in SIGNING_SOURCES.items():
        sources[name] = resolve_secrets(name, config, environ)
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
