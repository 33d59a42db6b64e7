"""An upper bound for `make bench-ingest`: ingest's own app and server with nothing after the
handler — a publisher that confirms at once without encoding or sending, and (through
HOOKPIPE_LOG_LEVEL=WARNING) no canonical log line. What ingest could reach if publishing,
CloudEvents encoding and logging cost nothing."""

import gc

import functions_framework.aio
from hookpipe.event import WebhookEvent
from hookpipe.settings import load_settings
from hookpipe_ingest.app import create_app
from hookpipe_ingest.settings import IngestSettings
from starlette.requests import Request
from starlette.responses import Response


class ConfirmAtOnce:
    async def publish(self, event: WebhookEvent) -> str:
        return "0"

    async def ready(self) -> bool:
        return True


app = create_app(load_settings(IngestSettings), publisher_factory=ConfirmAtOnce)
gc.freeze()  # as ingest/main.py does
gc.set_threshold(10_000, 20, 20)


@functions_framework.aio.http
async def handler_only(request: Request) -> Response:
    return await app.handle(request)
