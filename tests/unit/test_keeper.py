"""Publish or spool: ``EventKeeper`` with tiny fakes (the real publisher and spool are exercised
on the emulators in tests/e2e/test_spool.py)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from hookpipe.event import WebhookEvent, from_message
from hookpipe_ingest.errors import BadSpoolObject, Unavailable
from hookpipe_ingest.keeper import EventKeeper, Kept
from hookpipe_ingest.spool import GcsSpool, decode, encode

from tests.ingest_fakes import RecordingPublisher, RecordingSpool

EVENT = WebhookEvent(
    "e-1", "leadprosper", "t", datetime(2026, 11, 30, tzinfo=UTC), "application/json", b"{}"
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _keeper(
    publisher: RecordingPublisher, spool: RecordingSpool | None, clock: Clock
) -> EventKeeper:
    return EventKeeper(publisher, spool, bypass_seconds=5, retry_after_seconds=7, monotonic=clock)


def test_published_when_pubsub_confirms() -> None:
    publisher, spool = RecordingPublisher(), RecordingSpool()
    assert asyncio.run(_keeper(publisher, spool, Clock()).keep(EVENT)).how == "published"
    assert publisher.published == [EVENT]
    assert spool.objects == {}


def test_spooled_with_every_attribute_when_pubsub_does_not_confirm() -> None:
    spool = RecordingSpool()
    assert asyncio.run(_keeper(RecordingPublisher(fail=True), spool, Clock()).keep(EVENT)).how == (
        "spooled"
    )
    data, attributes = spool.objects["e-1"]
    assert from_message(data, attributes) == EVENT


def test_pubsub_is_bypassed_for_a_while_after_a_failure_then_tried_again() -> None:
    publisher, spool, clock = RecordingPublisher(fail=True), RecordingSpool(), Clock()
    keeper = _keeper(publisher, spool, clock)
    asyncio.run(keeper.keep(EVENT))
    publisher.fail = False  # would succeed, but the keeper does not ask yet
    assert keeper.bypassing_pubsub
    assert asyncio.run(keeper.keep(EVENT)).how == "spooled"
    assert publisher.published == []
    clock.now += 5
    assert asyncio.run(keeper.keep(EVENT)).how == "published"


def test_503_only_when_neither_pubsub_nor_the_spool_can_take_it() -> None:
    keeper = _keeper(RecordingPublisher(fail=True), RecordingSpool(down=True), Clock())
    with pytest.raises(Unavailable, match="neither Pub/Sub nor the spool") as info:
        asyncio.run(keeper.keep(EVENT))
    assert info.value.retry_after_seconds == 7


def test_without_a_spool_an_unconfirmed_publish_is_503_as_before() -> None:
    with pytest.raises(Unavailable, match="did not confirm"):
        asyncio.run(_keeper(RecordingPublisher(fail=True), None, Clock()).keep(EVENT))


def test_spool_documents_round_trip_and_refuse_what_is_not_one() -> None:
    attributes = {"ce-id": "e-1", "content-type": "application/json"}
    assert decode(encode(b"\x00\xff", attributes)) == (b"\x00\xff", attributes)
    for junk in (b"", b"[]", b'{"attributes": {"a": 1}, "data": ""}', b'{"data": "!!"}'):
        with pytest.raises(BadSpoolObject, match="not a spooled message"):
            decode(junk)


class HangingPublisher(RecordingPublisher):
    """Pub/Sub gone: the first publish fails at once, later ones hang until released."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.release = asyncio.Event()

    async def publish(self, event: WebhookEvent) -> str:
        self.calls += 1
        if self.calls > 1:
            await self.release.wait()
        raise Unavailable("Pub/Sub did not confirm within 5 s", 7)


def test_after_the_bypass_only_one_request_probes_pubsub_the_rest_keep_spooling() -> None:
    """While Pub/Sub is down, a probe waits out the publish deadline: one request, not all."""

    async def scenario() -> tuple[int, list[Kept]]:
        publisher, spool, clock = HangingPublisher(), RecordingSpool(), Clock()
        keeper = _keeper(publisher, spool, clock)
        assert (await keeper.keep(EVENT)).how == "spooled"  # the failure that starts the bypass
        clock.now += 5  # the bypass is over: the next request probes
        probe = asyncio.create_task(keeper.keep(EVENT))
        await asyncio.sleep(0)
        others = [
            await asyncio.wait_for(keeper.keep(EVENT), timeout=2) for _ in range(5)
        ]  # must not wait on Pub/Sub while the probe does
        publisher.release.set()
        assert (await probe).how == "spooled"
        return publisher.calls, others

    calls, others = asyncio.run(scenario())
    assert calls == 2  # the first failure and the one probe
    assert [kept.how for kept in others] == ["spooled"] * 5


class BrokenPublisher(RecordingPublisher):
    async def publish(self, event: WebhookEvent) -> str:
        raise RuntimeError("grpc channel closed")


def test_any_publish_failure_spools_the_event_and_says_why() -> None:
    """Not only Unavailable: whatever stops a publish (a client bug, a closed channel), the event
    is kept, and the reason travels to the request's log line."""
    spool = RecordingSpool()
    kept = asyncio.run(_keeper(BrokenPublisher(), spool, Clock()).keep(EVENT))
    assert kept.how == "spooled"
    assert kept.reason == "publish failed: RuntimeError: grpc channel closed"
    assert "e-1" in spool.objects


def test_a_spool_without_credentials_is_a_503_with_retry_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The real Cloud Storage adapter on a machine with no credentials at all (no emulator, no
    key, no metadata server): a GoogleAuthError, answered 503 + Retry-After, never a 500."""
    for name in ("STORAGE_EMULATOR_HOST", "GOOGLE_APPLICATION_CREDENTIALS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_GCE_CHECK", "True")  # google-auth: do not probe a metadata server
    spool = GcsSpool("hookpipe-spool", project_id="p", timeout_seconds=2, emulator_host=None)
    keeper = EventKeeper(
        RecordingPublisher(fail=True), spool, bypass_seconds=5, retry_after_seconds=7
    )
    with pytest.raises(Unavailable, match="DefaultCredentialsError") as raised:
        asyncio.run(keeper.keep(EVENT))
    assert raised.value.headers() == {"Retry-After": "7"}
