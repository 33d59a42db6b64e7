"""Ingest's publisher when Pub/Sub does not answer: a bounded deadline, then 503, and a bounded
queue that refuses at once rather than waiting towards a timeout."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from hookpipe.event import WebhookEvent
from hookpipe_devstack.processes import free_port
from hookpipe_ingest.errors import Unavailable
from hookpipe_ingest.publisher import PubSubPublisher


def _event(i: int) -> WebhookEvent:
    return WebhookEvent(str(i), "leadprosper", "t", datetime.now(UTC), "application/json", b"{}")


async def _until(condition: Callable[[], bool]) -> None:
    """Let the event loop run until ``condition`` holds (no wall-clock wait)."""
    for _ in range(10_000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition never held")


def test_unreachable_pubsub_gives_unavailable_and_a_full_queue_refuses_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", f"127.0.0.1:{free_port()}")  # nothing listens

    async def scenario() -> list[str | BaseException]:
        publisher = PubSubPublisher(
            "projects/p/topics/t",
            timeout_seconds=1.0,
            retry_after_seconds=7,
            max_pending=1,
            max_concurrent=1,
            max_delay_seconds=0,
        )
        in_flight = asyncio.ensure_future(publisher.publish(_event(1)))
        await asyncio.sleep(0)  # it runs up to its submit: queued
        await _until(lambda: publisher.queued == 0)  # taken: the first RPC is under way
        queued = asyncio.ensure_future(publisher.publish(_event(2)))
        await _until(lambda: publisher.queued == 1)
        with pytest.raises(Unavailable, match="1 publishes pending") as refused:
            await publisher.publish(_event(3))
        assert refused.value.retry_after_seconds == 7
        return await asyncio.gather(in_flight, queued, return_exceptions=True)

    outcomes = asyncio.run(scenario())
    assert all(isinstance(o, Unavailable) for o in outcomes), outcomes
    assert all(o.retry_after_seconds == 7 for o in outcomes if isinstance(o, Unavailable))
