"""functions-framework entry point for the worker (``--target=worker --asgi``).

Settings are read at import, so a bad configuration stops the process at once; the Postgres pool,
BigQuery client and dead-letter publisher are opened inside the serving process on first use.
"""

import sys

import functions_framework.aio
from hookpipe.settings import load_settings
from hookpipe.sources import SourceConfigError
from hookpipe_worker.app import create_app
from hookpipe_worker.settings import WorkerSettings
from starlette.requests import Request
from starlette.responses import Response

try:
    app = create_app(load_settings(WorkerSettings))
except SourceConfigError as exc:
    print(f"hookpipe worker: {exc}", file=sys.stderr)
    raise SystemExit(78) from None


@functions_framework.aio.http
async def worker(request: Request) -> Response:
    return await app.handle(request)
