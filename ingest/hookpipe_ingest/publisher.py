"""The Pub/Sub publisher adapter: one per process, batching concurrent requests' publishes.

Each webhook request waits for its own message to be confirmed. Rather than the thread-based
``PublisherClient`` (a commit thread per batch contending for the GIL with the event loop: 64 µs
of CPU per message here), ingest uses the asyncio GAPIC client ``PublisherAsyncClient`` and
coalesces concurrent publishes with :class:`hookpipe.batching.MicroBatcher`: one ``Publish`` RPC
per batch, 12-39 µs of CPU per message (docs/benchmarks.md).

* ``max_delay=0``: a lone request is sent at once; under load, requests that arrive while
  ``max_concurrent`` RPCs are in flight share the next one, so batches grow with load.
* Batches stay within Pub/Sub's request limits (1,000 messages, 10 MB).
* Bounded memory, honest backpressure: past ``max_pending`` queued messages, ``publish`` fails at
  once (503 + Retry-After) instead of queueing towards a timeout.
* Deadline: the RPC's retries stop at ``timeout_seconds``, and the request stops waiting then too,
  well inside senders' 10-15 s timeouts.
* Messages are raw protobuf (``PubsubMessage.pb()``), wrapped into the request without a copy:
  building proto-plus ``PubsubMessage`` objects cost 16 µs each, the raw ones 2 µs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol, cast

from google.api_core import retry_async
from google.api_core.exceptions import GoogleAPICallError, RetryError
from google.pubsub_v1 import PublisherAsyncClient, PublishRequest, PubsubMessage
from hookpipe.batching import BatchPolicy, MicroBatcher
from hookpipe.errors import error_class
from hookpipe.event import WebhookEvent, to_message

from hookpipe_ingest.errors import Unavailable

MAX_MESSAGES_PER_REQUEST = 1000
MAX_BYTES_PER_REQUEST = 9 * 1024 * 1024  # under Pub/Sub's 10 MB, leaving room for framing

# What a Pub/Sub call raises when it does not get through (an API error, or its retry ran out).
PUBLISH_ERRORS = (GoogleAPICallError, RetryError)


class RawMessage(Protocol):
    """What is read of the protobuf ``PubsubMessage`` (its class is generated at run time)."""

    data: bytes
    attributes: Mapping[str, str]


# The protobuf classes behind the proto-plus wrappers.
new_raw_message = cast(Callable[..., RawMessage], PubsubMessage.pb())
new_raw_request = PublishRequest.pb()


def _message_size(message: RawMessage) -> int:
    return len(message.data) + sum(len(k) + len(v) for k, v in message.attributes.items()) + 64


class PubSubPublisher:
    def __init__(
        self,
        topic_path: str,
        *,
        timeout_seconds: float,
        retry_after_seconds: int,
        max_pending: int,
        max_concurrent: int,
        max_delay_seconds: float,
    ) -> None:
        self._topic = topic_path
        self._timeout = timeout_seconds
        self._retry_after = retry_after_seconds
        self._policy = BatchPolicy(
            max_items=MAX_MESSAGES_PER_REQUEST,
            max_bytes=MAX_BYTES_PER_REQUEST,
            max_delay=max_delay_seconds,
            max_concurrent=max_concurrent,
            max_queued=max_pending,
        )
        self._retry = retry_async.AsyncRetry(
            initial=0.05, maximum=1.0, multiplier=2.0, timeout=timeout_seconds
        )
        # Both bind to the running event loop, so they are made on first use, in the loop.
        self._client: PublisherAsyncClient | None = None
        self._batcher: MicroBatcher[RawMessage, str] | None = None

    def _started(self) -> MicroBatcher[RawMessage, str]:
        if self._batcher is None:
            self._client = PublisherAsyncClient()
            self._batcher = MicroBatcher(
                self._send,
                self._policy,
                size=_message_size,
                overloaded=lambda queued: Unavailable(
                    f"ingest has {queued} publishes pending", self._retry_after
                ),
            )
        return self._batcher

    async def _send(self, messages: Sequence[RawMessage]) -> list[str | BaseException]:
        assert self._client is not None
        request = PublishRequest.wrap(new_raw_request(topic=self._topic, messages=messages))
        try:
            response = await self._client.publish(
                request=request,
                retry=self._retry,
                timeout=self._timeout,
            )
        except PUBLISH_ERRORS as exc:
            error = Unavailable(
                f"Pub/Sub refused the publish: {error_class(exc)}", self._retry_after
            )
            return [error] * len(messages)
        return list(response.message_ids)

    async def publish(self, event: WebhookEvent) -> str:
        data, attributes = to_message(event)
        batcher = self._started()
        try:
            return await asyncio.wait_for(
                batcher.submit(new_raw_message(data=data, attributes=attributes)), self._timeout
            )
        except TimeoutError:
            raise Unavailable(
                f"Pub/Sub did not confirm within {self._timeout:g} s", self._retry_after
            ) from None

    @property
    def queued(self) -> int:
        """Publishes waiting for a free slot (not yet sent to Pub/Sub)."""
        return self._batcher.queued if self._batcher is not None else 0

    async def ready(self) -> bool:
        self._started()
        assert self._client is not None
        try:
            await self._client.get_topic(topic=self._topic, timeout=2.0)
        except PUBLISH_ERRORS:
            return False
        return True
