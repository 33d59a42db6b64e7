"""functions-framework entry point for the worker (``--target=worker --asgi``).

Settings are read at import, so a bad configuration stops the process at once; the Postgres pool,
BigQuery client and dead-letter publisher are opened inside the serving process on first use.
"""

import functions_framework.aio
from hookpipe.errors import ConfigError
from hookpipe.settings import exit_on_config_error, load_settings
from hookpipe_worker.app import create_app
from hookpipe_worker.settings import WorkerSettings
from starlette.requests import Request
from starlette.responses import Response

try:
    app = create_app(load_settings(WorkerSettings))
except ConfigError as exc:
    raise exit_on_config_error("worker", exc) from None


@functions_framework.aio.http
async def worker(request: Request) -> Response:
    return await app.handle(request)
