"""The dead-letter topic's adapter: publish a message that cannot succeed, with its reason.

The original data and attributes are kept unchanged, so the message can be replayed as it was once
the cause is fixed; the reason travels in ``hookpipe-*`` attributes
(:func:`hookpipe_worker.dead_letters.reason_attributes`).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from google.api_core.exceptions import GoogleAPICallError, RetryError
from google.cloud.pubsub_v1 import PublisherClient
from hookpipe.deadletters import WORKER_ATTRIBUTES
from hookpipe.errors import error_class

from hookpipe_worker.dead_letters import reason_attributes
from hookpipe_worker.delivery import Delivery
from hookpipe_worker.errors import SinkUnavailable


class PubSubDeadLetters:
    """The :class:`~hookpipe_worker.ports.DeadLetterTopic` port on Pub/Sub."""

    def __init__(self, project_id: str, topic: str, revision: str, timeout_seconds: float) -> None:
        self._client = PublisherClient()
        self._topic = self._client.topic_path(project_id, topic)
        self._revision = revision
        self._timeout = timeout_seconds

    async def publish(self, delivery: Delivery, exc: BaseException) -> str:
        """Publish and wait for Pub/Sub's confirmation; raise SinkUnavailable otherwise (the
        push is then answered non-2xx and Pub/Sub redelivers it)."""
        # Replaced, not stacked, when a replayed message fails again.
        attributes = {k: v for k, v in delivery.attributes.items() if k not in WORKER_ATTRIBUTES}
        attributes.update(reason_attributes(delivery, exc, self._revision, datetime.now(UTC)))
        try:
            future = self._client.publish(
                self._topic, delivery.data, timeout=self._timeout, **attributes
            )
            return str(await asyncio.wait_for(asyncio.wrap_future(future), self._timeout))
        except (TimeoutError, GoogleAPICallError, RetryError, ValueError) as exc2:
            raise SinkUnavailable(f"dead-letter publish failed: {error_class(exc2)}") from None
