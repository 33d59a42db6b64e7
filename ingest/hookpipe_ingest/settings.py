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
    # Publishes queued for a batch before ingest sheds load with 503 (bounded memory: at most
    # this many request bodies wait in the process).
    max_pending_publishes: int = Field(default=2000, ge=1)
    # Publish RPCs in flight at once; messages arriving meanwhile share the next RPC. Each RPC
    # costs ~0.3 ms of CPU in the client whatever its size, so fewer, fuller RPCs win on a busy
    # instance (docs/benchmarks.md, "Publish batching").
    publish_max_concurrent: int = Field(default=2, ge=1, le=64)
    publish_max_delay_ms: float = Field(default=0.0, ge=0, le=100)
