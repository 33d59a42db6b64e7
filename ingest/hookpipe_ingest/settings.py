"""Ingest's settings: one immutable object, built from the environment at start-up."""

from __future__ import annotations

from pathlib import Path

from hookpipe.settings import CommonSettings
from pydantic import Field


class IngestSettings(CommonSettings):
    sources_file: Path = Field(description="TOML file declaring the webhook sources")
    # Senders time out after 10-15 s; answering 503 well before that lets their retry happen.
    publish_timeout_seconds: float = Field(default=5.0, gt=0, le=10)
    retry_after_seconds: int = Field(default=5, ge=1, le=300)
    # Publishes awaiting confirmation before ingest sheds load with 503 (bounded memory).
    max_pending_publishes: int = Field(default=2000, ge=1)
    max_pending_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
