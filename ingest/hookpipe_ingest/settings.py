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
    # Publish RPCs in flight at once; messages arriving meanwhile share the next RPC. An RPC
    # costs about the same client CPU whatever its size, so fewer, fuller RPCs win on a busy
    # instance (docs/benchmarks.md, "Publish batching").
    publish_max_concurrent: int = Field(default=2, ge=1, le=64)
    publish_max_delay_ms: float = Field(default=0.0, ge=0, le=100)
    # The spool (docs/delivery.md, "The spool"): where an event goes when Pub/Sub does not confirm
    # it in time. Unset: no spool, and such a webhook is answered 503 (for senders that retry).
    spool_bucket: str | None = Field(default=None, min_length=1)
    # publish deadline + spool write stay under senders' 10-15 s timeouts (and Cloud Run's 15 s).
    spool_timeout_seconds: float = Field(default=5.0, gt=0, le=10)
    # After a failed publish, send events straight to the spool for this long rather than have
    # each wait out the publish deadline while Pub/Sub is down.
    spool_bypass_seconds: float = Field(default=5.0, ge=0, le=300)
