"""The HTTP ceiling for `make bench-ingest`: a functions-framework ASGI function that reads the
body and answers 202 without doing anything, served exactly as ingest is."""

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response


@functions_framework.aio.http
async def trivial(request: Request) -> Response:
    await request.body()
    return JSONResponse({"event_id": "0"}, status_code=202)
