"""Ingest's ports: what keeping an accepted webhook needs from the outside world, declared apart
from the adapters that provide it (``publisher.py``: Pub/Sub; ``spool.py``: Cloud Storage), as
the worker's are (``hookpipe_worker.ports``). The keeper and the app import these, never an
adapter's internals; :mod:`hookpipe_ingest.bootstrap` builds the adapters.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from hookpipe.event import WebhookEvent


class EventPublisher(Protocol):
    async def publish(self, event: WebhookEvent) -> str:
        """Publish ``event``; return the Pub/Sub message id once Pub/Sub has confirmed it.

        Raises :class:`Unavailable` when Pub/Sub does not confirm within the deadline.
        """
        ...

    async def ready(self) -> bool:
        """Whether the topic is reachable now."""
        ...


class Spool(Protocol):
    async def put(self, event_id: str, data: bytes, attributes: Mapping[str, str]) -> None:
        """Keep the message durably; raise :class:`SpoolUnavailable` when it could not."""
        ...
