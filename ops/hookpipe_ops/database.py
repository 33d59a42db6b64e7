"""Connecting to the Postgres the operator commands read and write (the archive, the reconcile
ledger, the smoke test's row check)."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from hookpipe_ops.errors import UsageError

CONNECT_TIMEOUT_SECONDS = 10


def connect(url: str, named: str) -> psycopg.Connection[Any]:
    """``psycopg.connect(url)``; a URL libpq cannot parse is a usage error that never shows it
    (libpq's message quotes the part it could not parse: often the password). ``named`` says
    where the URL came from (an option, a variable)."""
    try:
        conninfo_to_dict(url)
    except psycopg.Error:
        raise UsageError(
            f"{named} is not a PostgreSQL URL libpq can parse (not shown: it holds the "
            "password); percent-encode reserved characters: % as %25, @ as %40, / as %2F"
        ) from None
    return psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_SECONDS)
