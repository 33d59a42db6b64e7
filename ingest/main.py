"""functions-framework entry point for ingest (``--target=ingest --asgi``).

Settings and sources are read at import, so a bad configuration stops the process at once; the
Pub/Sub client is created inside the serving process on first use.
"""

import sys

import functions_framework.aio
from hookpipe.settings import load_settings
from hookpipe.sources import SourceConfigError
from hookpipe_ingest.app import create_app
from hookpipe_ingest.settings import IngestSettings
from starlette.requests import Request
from starlette.responses import Response

try:
    app = create_app(load_settings(IngestSettings))
except SourceConfigError as exc:
    print(f"hookpipe ingest: {exc}", file=sys.stderr)
    raise SystemExit(78) from None


@functions_framework.aio.http
async def ingest(request: Request) -> Response:
    return await app.handle(request)
