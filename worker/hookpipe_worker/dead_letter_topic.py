"""Publish a message that cannot succeed to the dead-letter topic, with its reason.

The original data and attributes are kept unchanged, so the message can be replayed as it was once
the cause is fixed; the reason travels in ``hookpipe-*`` attributes.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Protocol

from google.api_core.exceptions import GoogleAPICallError, RetryError
from google.cloud.pubsub_v1 import PublisherClient
from hookpipe.deadletters import (
    FIRST_FAILURE_TIME,
    ORIGINAL_MESSAGE_ID,
    WORKER_ATTRIBUTES,
    timestamp,
)
from hookpipe.event import MAX_ATTRIBUTE_BYTES, clip_attribute

from hookpipe_worker.delivery import Delivery
from hookpipe_worker.errors import SinkUnavailable, error_class


def reason_attributes(
    delivery: Delivery, exc: BaseException, revision: str, now: datetime
) -> dict[str, str]:
    """The attributes that say why a message was dead-lettered. Pure."""
    attributes = {
        "hookpipe-error-class": error_class(exc),
        "hookpipe-error-message": clip_attribute(str(exc) or error_class(exc), MAX_ATTRIBUTE_BYTES),
        "hookpipe-worker-revision": revision,
        # A replayed message that fails again keeps the history a replay carries over: when it
        # first failed, and the first message it was.
        FIRST_FAILURE_TIME: delivery.attributes.get(FIRST_FAILURE_TIME) or timestamp(now),
    }
    if delivery.delivery_attempt is not None:
        attributes["hookpipe-delivery-attempt"] = str(delivery.delivery_attempt)
    original = delivery.attributes.get(ORIGINAL_MESSAGE_ID) or delivery.message_id
    if original:
        attributes[ORIGINAL_MESSAGE_ID] = original
    return attributes


class DeadLetterSink(Protocol):
    async def publish(self, delivery: Delivery, exc: BaseException) -> str: ...


class PubSubDeadLetters:
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
            raise SinkUnavailable(f"dead-letter publish failed: {type(exc2).__name__}") from None
