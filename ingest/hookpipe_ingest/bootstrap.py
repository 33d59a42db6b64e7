"""Ingest's wiring: the production adapters behind its ports, as the worker's ``bootstrap.py``
builds its own. ``create_app`` (``hookpipe_ingest.app``) takes factories rather than adapters:
they run on first use, inside the serving process (the server imports the app before it forks,
and gRPC channels must not cross a fork). Tests pass their own factories (tiny fakes, or the
real local services).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from hookpipe_ingest.ports import EventPublisher, Spool
from hookpipe_ingest.publisher import PubSubPublisher
from hookpipe_ingest.settings import IngestSettings
from hookpipe_ingest.spool import GcsSpool


def default_publisher(settings: IngestSettings) -> Callable[[], EventPublisher]:
    """The events topic on Pub/Sub, with the settings' deadlines and flow control."""

    def create() -> EventPublisher:
        return PubSubPublisher(
            f"projects/{settings.project_id}/topics/{settings.events_topic}",
            timeout_seconds=settings.publish_timeout_seconds,
            retry_after_seconds=settings.retry_after_seconds,
            max_pending=settings.max_pending_publishes,
            max_concurrent=settings.publish_max_concurrent,
            max_delay_seconds=settings.publish_max_delay_ms / 1000,
        )

    return create


def default_spool(settings: IngestSettings) -> Callable[[], Spool] | None:
    """The spool bucket on Cloud Storage, or None when the settings name none."""
    bucket = settings.spool_bucket
    if bucket is None:
        return None

    def create() -> Spool:
        return GcsSpool(
            bucket,
            project_id=settings.project_id,
            timeout_seconds=settings.spool_timeout_seconds,
            emulator_host=os.environ.get("STORAGE_EMULATOR_HOST"),
        )

    return create
