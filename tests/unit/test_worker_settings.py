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
