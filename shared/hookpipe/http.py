"""What both services read of an HTTP request, taken from the ASGI scope once."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def request_headers(scope: Mapping[str, Any]) -> dict[str, str]:
    """The request's headers by lower-case name (ASGI gives them lower-case); a repeated header
    keeps its last value. One dict per request, instead of Starlette's ``Request.headers``,
    which rebuilds its header list on each access."""
    return {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
