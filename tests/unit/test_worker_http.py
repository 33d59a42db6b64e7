"""The worker's push contract, in process with tiny fakes for the sinks and the dead-letter topic.
(The real sinks and Pub/Sub are exercised by tests/e2e and tests/faults.)"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hookpipe_worker.app import WorkerApp, create_app
from hookpipe_worker.bootstrap import Adapters
from hookpipe_worker.dead_letters import ArchivedDeadLetter
from hookpipe_worker.delivery import Delivery
from hookpipe_worker.errors import PushForbidden, RowRejected, SinkUnavailable, WorkerError
from hookpipe_worker.rows import EventRow
from hookpipe_worker.settings import WorkerSettings
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.testclient import TestClient

from tests.events import event_envelope, push_envelope

REPO = Path(__file__).resolve().parents[2]


class FakeWriter:
    def __init__(self) -> None:
        self.committed: list[str] = []
        self.fail_with: WorkerError | None = None
        self.reject: set[str] = set()

    async def commit(self, rows: Sequence[EventRow]) -> dict[str, WorkerError | None]:
        if self.fail_with is not None:
            raise self.fail_with
        results: dict[str, WorkerError | None] = {}
        for row in rows:
            if row.event_id in self.reject:
                results[row.event_id] = RowRejected("bigquery", "payload: invalid")
            else:
                self.committed.append(row.event_id)
                results[row.event_id] = None
        return results


class FakeDeadLetters:
    def __init__(self) -> None:
        self.published: list[tuple[Delivery, BaseException]] = []
        self.down = False

    async def publish(self, delivery: Delivery, exc: BaseException) -> str:
        if self.down:
            raise SinkUnavailable("dead-letter publish failed: ServiceUnavailable")
        self.published.append((delivery, exc))
        return "dl-1"


class FakeArchive:
    def __init__(self) -> None:
        self.records: list[ArchivedDeadLetter] = []
        self.down = False

    async def write(self, record: ArchivedDeadLetter) -> None:
        if self.down:
            raise SinkUnavailable("archive: postgres: OperationalError")
        self.records.append(record)


class DenyAll:
    async def verify(self, headers: object) -> None:
        raise PushForbidden("push token is not from the push service account")


async def _noop() -> None:
    return None


async def _ready() -> bool:
    return True


def _app(
    writer: FakeWriter,
    dead: FakeDeadLetters,
    archive: FakeArchive | None = None,
    **kwargs: object,
) -> TestClient:
    settings = WorkerSettings(
        project_id="p",
        database_url="postgresql://x",  # type: ignore[arg-type]
        sources_file=REPO / "infra/sources.toml",
        push_auth="none",
        batch_max_delay_ms=0,
    )
    app: WorkerApp = create_app(
        settings,
        adapters_factory=lambda: Adapters(writer, dead, _noop, _ready, archive or FakeArchive()),
        **kwargs,
    )  # type: ignore[arg-type]
    return TestClient(Starlette(routes=[Route("/{p:path}", app.handle, methods=["GET", "POST"])]))


@pytest.fixture
def writer() -> FakeWriter:
    return FakeWriter()


@pytest.fixture
def dead() -> FakeDeadLetters:
    return FakeDeadLetters()


def test_committed_push_is_204(writer: FakeWriter, dead: FakeDeadLetters) -> None:
    response = _app(writer, dead).post("/pubsub/push", json=event_envelope({"lp_lead_id": "1"}))
    assert response.status_code == 204
    assert len(writer.committed) == 1
    assert dead.published == []


@pytest.mark.parametrize(
    ("envelope", "error_class"),
    [
        ({"message": {"data": "%%%"}}, "UndecodableDelivery"),
        (push_envelope(b"{}", {"ce-id": "x"}), "EnvelopeError"),
        (event_envelope({"lp_lead_id": "1"}, source="unconfigured"), "UnknownSource"),
        # Each of these was a 500, retried 5 times, then dead-lettered by Pub/Sub with no reason.
        (
            push_envelope(
                b"{}",
                {
                    **event_envelope({})["message"]["attributes"],
                    "ce-time": "0001-01-01T00:30:00+01:00",
                },
            ),
            "EnvelopeError",
        ),
        (
            push_envelope(b"\xff\xfe{\x00}\x00", {"content-type": "application/json"}),
            "EnvelopeError",
        ),
        (push_envelope(b"\xff\xfe", {}), "EnvelopeError"),
    ],
)
def test_permanent_failures_are_dead_lettered_then_acked(
    writer: FakeWriter, dead: FakeDeadLetters, envelope: dict[str, object], error_class: str
) -> None:
    response = _app(writer, dead).post("/pubsub/push", json=envelope)
    assert response.status_code == 204
    [(_delivery, exc)] = dead.published
    assert type(exc).__name__ == error_class
    assert writer.committed == []


@pytest.mark.parametrize(
    "envelope",
    [
        event_envelope({"lp_timestamp": "yesterday"}),
        event_envelope({"note": "\ud800", "n": float("nan")}),
        push_envelope(b"{not json", {**event_envelope({})["message"]["attributes"]}),
    ],
)
def test_values_that_do_not_convert_are_committed_marked_not_dead_lettered(
    writer: FakeWriter, dead: FakeDeadLetters, envelope: dict[str, object]
) -> None:
    response = _app(writer, dead).post("/pubsub/push", json=envelope)
    assert response.status_code == 204
    assert len(writer.committed) == 1
    assert dead.published == []


@pytest.mark.parametrize(
    "body",
    [
        b'{"message": ' * 100_000 + b"{}" + b"}" * 100_000,
        b'{"message": {"data": "e30=", "messageId": ' + b"9" * 5000 + b"}}",
        b'{"message": {"data": "e30="}, "deliveryAttempt": ' + b"9" * 5000 + b"}",
        b'{"message": {"data": "e30="}, "deliveryAttempt": 1e999}',
    ],
)
def test_hostile_push_bodies_are_dead_lettered_not_500(
    writer: FakeWriter, dead: FakeDeadLetters, body: bytes
) -> None:
    response = _app(writer, dead).post(
        "/pubsub/push", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 204
    [(_delivery, exc)] = dead.published
    assert type(exc).__name__ in ("UndecodableDelivery", "EnvelopeError")


def test_undecodable_push_keeps_the_raw_body_for_the_dead_letter(
    writer: FakeWriter, dead: FakeDeadLetters
) -> None:
    _app(writer, dead).post("/pubsub/push", content=b"garbage", headers={"content-type": "x"})
    assert dead.published[0][0].data == b"garbage"


def test_a_row_a_sink_rejects_is_dead_lettered_with_the_delivery(
    writer: FakeWriter, dead: FakeDeadLetters
) -> None:
    envelope = event_envelope({"lp_lead_id": "poison"})
    writer.reject.add(envelope["message"]["attributes"]["ce-id"])  # type: ignore[index]
    response = _app(writer, dead).post("/pubsub/push", json=envelope)
    assert response.status_code == 204
    [(delivery, exc)] = dead.published
    assert isinstance(exc, RowRejected)
    assert (delivery.message_id, delivery.delivery_attempt) == ("m-1", 2)


def test_dead_letter_publish_failure_is_not_acked(
    writer: FakeWriter, dead: FakeDeadLetters
) -> None:
    dead.down = True
    response = _app(writer, dead).post("/pubsub/push", json={"message": {"data": "%%%"}})
    assert response.status_code == 503


@pytest.mark.parametrize(
    ("error", "status"),
    [(SinkUnavailable("postgres: pool timeout"), 503), (RuntimeError("bug"), 500)],
)
def test_transient_and_unexpected_failures_are_retried(
    writer: FakeWriter, dead: FakeDeadLetters, error: Exception, status: int
) -> None:
    writer.fail_with = error  # type: ignore[assignment]
    response = _app(writer, dead).post("/pubsub/push", json=event_envelope({"lp_lead_id": "1"}))
    assert response.status_code == status
    assert dead.published == []


def test_unauthenticated_push_is_refused_before_anything(
    writer: FakeWriter, dead: FakeDeadLetters
) -> None:
    response = _app(writer, dead, push_auth=DenyAll()).post(
        "/pubsub/push", json=event_envelope({"lp_lead_id": "1"})
    )
    assert response.status_code == 403
    assert (writer.committed, dead.published) == ([], [])


def test_routes(writer: FakeWriter, dead: FakeDeadLetters) -> None:
    client = _app(writer, dead)
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    assert client.get("/pubsub/push").status_code == 405
    assert client.post("/elsewhere").status_code == 404


def test_dead_letter_reason_attributes_keep_the_message_history() -> None:
    from hookpipe.deadletters import WORKER_ATTRIBUTES
    from hookpipe_worker.dead_letters import reason_attributes

    now = datetime(2026, 11, 26, tzinfo=UTC)
    first = Delivery(b"", {}, message_id="m-1", delivery_attempt=3)
    attrs = reason_attributes(first, RowRejected("postgres", "bad"), "rev-7", now)
    assert attrs == {
        "hookpipe-error-class": "RowRejected",
        "hookpipe-error-message": "postgres rejected the row: bad",
        "hookpipe-worker-revision": "rev-7",
        "hookpipe-first-failure-time": "2026-11-26T00:00:00Z",
        "hookpipe-delivery-attempt": "3",
        "hookpipe-original-message-id": "m-1",
    }
    # Exactly the attributes the CLI knows as the worker's (hookpipe.deadletters).
    assert set(attrs) == set(WORKER_ATTRIBUTES)
    # Replayed a day later (with the history a replay carries) and failing again.
    replayed = Delivery(
        b"",
        {
            "hookpipe-original-message-id": "m-1",
            "hookpipe-first-failure-time": "2026-11-26T00:00:00Z",
        },
        message_id="m-9",
    )
    later = datetime(2026, 11, 27, tzinfo=UTC)
    again = reason_attributes(replayed, RowRejected("postgres", "still bad"), "rev-8", later)
    assert again["hookpipe-original-message-id"] == "m-1"
    assert again["hookpipe-first-failure-time"] == "2026-11-26T00:00:00Z"
    assert again["hookpipe-error-message"] == "postgres rejected the row: still bad"


def test_a_dead_letter_pushed_to_the_archive_endpoint_is_archived(
    writer: FakeWriter, dead: FakeDeadLetters
) -> None:
    archive = FakeArchive()
    envelope = event_envelope({"lp_lead_id": "1"})
    envelope["message"]["attributes"] |= {  # type: ignore[index]
        "CloudPubSubDeadLetterSourceDeliveryCount": "5",
    }
    envelope["message"]["publishTime"] = "2026-11-30T01:02:03.123456789Z"  # type: ignore[index]
    client = _app(writer, dead, archive)
    assert client.post("/pubsub/dead-letters", json=envelope).status_code == 204
    [record] = archive.records
    assert (record.dead_letter_id, record.error_class, record.delivery_attempts) == (
        "m-1",
        "MaxDeliveryAttempts",
        5,
    )
    assert record.dead_lettered_at == datetime(2026, 11, 30, 1, 2, 3, 123456, tzinfo=UTC)
    assert writer.committed == []  # archived, not processed as an event
    assert dead.published == []


def test_the_archive_refuses_nothing_and_retries_when_it_cannot_write(
    writer: FakeWriter, dead: FakeDeadLetters
) -> None:
    archive = FakeArchive()
    client = _app(writer, dead, archive)
    response = client.post("/pubsub/dead-letters", content=b"\xff not json")
    assert response.status_code == 204
    assert archive.records[0].data == b"\xff not json"
    archive.down = True
    assert client.post("/pubsub/dead-letters", json=event_envelope({})).status_code == 503
