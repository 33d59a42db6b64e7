"""The Pub/Sub publisher adapter: created once per process, awaited without blocking the loop."""

from __future__ import annotations

import asyncio
from typing import Protocol

from google.api_core import retry as retries
from google.api_core.exceptions import GoogleAPICallError, RetryError
from google.cloud.pubsub_v1 import PublisherClient
from google.cloud.pubsub_v1.publisher.exceptions import FlowControlLimitError
from google.cloud.pubsub_v1.types import (
    BatchSettings,
    LimitExceededBehavior,
    PublisherOptions,
    PublishFlowControl,
)
from hookpipe.event import WebhookEvent, to_message

from hookpipe_ingest.errors import Unavailable


class EventPublisher(Protocol):
    async def publish(self, event: WebhookEvent) -> str:
        """Publish ``event``; return the Pub/Sub message id once Pub/Sub has confirmed it.

        Raises :class:`Unavailable` when Pub/Sub does not confirm within the deadline.
        """
        ...

    async def ready(self) -> bool:
        """Whether the topic is reachable now."""
        ...

    def close(self) -> None: ...


class PubSubPublisher:
    def __init__(
        self,
        project_id: str,
        topic: str,
        *,
        timeout_seconds: float,
        retry_after_seconds: int,
        max_pending_publishes: int,
        max_pending_bytes: int,
    ) -> None:
        self._timeout = timeout_seconds
        self._retry_after = retry_after_seconds
        self._client = PublisherClient(
            # Each request waits for its own publish, so batching only pays under concurrency:
            # 5 ms of latency lets concurrent requests share one Publish RPC without adding
            # noticeably to a lone request's latency (the library default is 10 ms).
            batch_settings=BatchSettings(
                max_messages=500, max_bytes=4 * 1024 * 1024, max_latency=0.005
            ),
            publisher_options=PublisherOptions(
                # Bounded memory and honest backpressure: past these limits publish() raises at
                # once and the sender gets 503 + Retry-After instead of a slow timeout.
                flow_control=PublishFlowControl(
                    message_limit=max_pending_publishes,
                    byte_limit=max_pending_bytes,
                    limit_exceeded_behavior=LimitExceededBehavior.ERROR,
                ),
            ),
        )
        self._topic = self._client.topic_path(project_id, topic)
        # The client's own retries stay inside our deadline, so a confirmation never arrives
        # after we have already told the sender 503.
        self._retry = retries.Retry(
            initial=0.05, maximum=1.0, multiplier=2.0, timeout=timeout_seconds
        )

    async def publish(self, event: WebhookEvent) -> str:
        data, attributes = to_message(event)
        try:
            future = self._client.publish(
                self._topic, data, retry=self._retry, timeout=self._timeout, **attributes
            )
        except FlowControlLimitError:
            raise Unavailable("ingest is at its publish limit", self._retry_after) from None
        try:
            message_id = await asyncio.wait_for(asyncio.wrap_future(future), self._timeout)
        except TimeoutError:
            raise Unavailable(
                f"Pub/Sub did not confirm within {self._timeout:g} s", self._retry_after
            ) from None
        except (GoogleAPICallError, RetryError) as exc:
            raise Unavailable(
                f"Pub/Sub refused the publish: {type(exc).__name__}", self._retry_after
            ) from None
        return str(message_id)

    async def ready(self) -> bool:
        try:
            await asyncio.to_thread(self._client.get_topic, topic=self._topic, timeout=2.0)
        except (GoogleAPICallError, RetryError):
            return False
        return True

    def close(self) -> None:
        self._client.stop()
