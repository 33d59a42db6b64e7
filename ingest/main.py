"""functions-framework entry point for ingest (``--target=ingest --asgi``).

Settings and sources are read at import, so a bad configuration stops the process at once; the
Pub/Sub client is created inside the serving process on first use.
"""

import gc

import functions_framework.aio
from hookpipe.errors import ConfigError
from hookpipe.settings import exit_on_config_error, load_settings
from hookpipe_ingest.app import create_app
from hookpipe_ingest.settings import IngestSettings
from starlette.requests import Request
from starlette.responses import Response

try:
    app = create_app(load_settings(IngestSettings))
except ConfigError as exc:
    raise exit_on_config_error("ingest", exc) from None

# What start-up built (modules, settings, sources) lives as long as the process: gc.freeze() keeps
# the collector from rescanning it. A request allocates a few hundred short-lived containers, so
# the default young-generation threshold collected every few requests and paused those in
# flight; a higher one lowered the p99 of `make bench-ingest` (docs/benchmarks.md).
gc.freeze()
gc.set_threshold(10_000, 20, 20)


@functions_framework.aio.http
async def ingest(request: Request) -> Response:
    return await app.handle(request)
