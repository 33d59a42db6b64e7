"""The worker's start-up checks (settings fail fast with a clear message)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hookpipe_worker.settings import WorkerSettings
from pydantic import ValidationError

REPO = Path(__file__).resolve().parents[2]
BASE = {"project_id": "p", "database_url": "postgresql://x", "sources_file": REPO / "x"}


def test_push_auth_none_is_refused_on_cloud_run() -> None:
    """Without OIDC anyone who can reach the worker could write rows: only for the emulator."""
    on_cloud_run = {
        **BASE,
        "push_auth": "none",
        "K_SERVICE": "hookpipe-worker",
        "PUBSUB_EMULATOR_HOST": None,  # whatever this test process's environment says
    }
    with pytest.raises(ValidationError, match="HOOKPIPE_PUSH_AUTH=none is refused on Cloud Run"):
        WorkerSettings.model_validate(on_cloud_run)


def test_push_auth_none_is_allowed_with_the_emulator_or_off_cloud_run() -> None:
    WorkerSettings.model_validate({**BASE, "push_auth": "none"})
    WorkerSettings.model_validate(
        {
            **BASE,
            "push_auth": "none",
            "K_SERVICE": "hookpipe-worker",
            "PUBSUB_EMULATOR_HOST": "127.0.0.1:8085",
        }
    )


def test_a_database_url_libpq_cannot_parse_stops_start_up_without_showing_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from hookpipe.errors import SettingsError
    from hookpipe.settings import load_settings

    monkeypatch.setenv("HOOKPIPE_PROJECT_ID", "p")
    monkeypatch.setenv("HOOKPIPE_SOURCES_FILE", str(REPO / "infra/sources.toml"))
    monkeypatch.setenv("HOOKPIPE_PUSH_AUTH", "none")
    monkeypatch.setenv("HOOKPIPE_DATABASE_URL", "postgresql://hookpipe:s3cr%et-pw@db:5432/x")
    with pytest.raises(SettingsError) as caught:
        load_settings(WorkerSettings)
    assert "HOOKPIPE_DATABASE_URL" in str(caught.value)
    assert "%25" in str(caught.value)  # says how to fix it
    assert "s3cr" not in str(caught.value)


def test_what_psycopg_logs_never_carries_the_password() -> None:
    """psycopg_pool logs libpq's errors as WARNINGs, and a parse error quotes the password: the
    worker redacts it from every line, whoever logs it (here: a real pool failing to connect)."""
    import asyncio
    import io
    import logging

    from hookpipe.logging import StructuredLineHandler, redact
    from hookpipe_worker.settings import database_url_secrets
    from psycopg_pool import AsyncConnectionPool, PoolTimeout

    url = "postgresql://hookpipe:s3cr%et-pw@127.0.0.1:1/x"
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers[:] = [StructuredLineHandler(stream)]
    try:
        redact(database_url_secrets(url))

        async def try_once() -> None:
            pool = AsyncConnectionPool(url, min_size=1, open=False, timeout=0.5)
            await pool.open(wait=False)
            try:
                with pytest.raises(PoolTimeout):
                    await pool.getconn()
            finally:
                await pool.close()

        asyncio.run(try_once())
    finally:
        root.handlers[:] = saved
    logged = stream.getvalue()
    assert "percent-encoded" in logged  # libpq's parse error was logged ...
    assert "s3cr" not in logged  # ... without the password
    assert "***" in logged
