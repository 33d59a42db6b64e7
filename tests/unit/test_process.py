"""The worker's use case without HTTP: ``decide`` (pure) and ``Processor`` over tiny fakes for its
ports. (tests/unit/test_worker_http.py drives the same through the push endpoint.)"""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path

import pytest
from hookpipe.event import to_message
from hookpipe.sources import load_source_configs
from hookpipe_worker.dead_letters import ArchivedDeadLetter
from hookpipe_worker.delivery import Delivery
from hookpipe_worker.errors import (
    Overloaded,
    RowRejected,
    SinkUnavailable,
    UndecodableDelivery,
    UnknownSource,
)
from hookpipe_worker.process import Commit, Processor, Push, ToDeadLetterTopic, decide
from hookpipe_worker.rows import EventRow

from tests.events import event_envelope, push_envelope, webhook_event

SOURCES = load_source_configs(Path(__file__).resolve().parents[2] / "infra/sources.toml")
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def push(envelope: dict[str, object]) -> Push:
    return Push(json.dumps(envelope).encode(), {"content-type": "application/json"})


class Ports:
    def __init__(self) -> None:
        self.committed: list[EventRow] = []
        self.commit_fails: BaseException | None = None
        self.dead_letters: list[tuple[Delivery, BaseException]] = []
        self.dead_letter_topic_down = False
        self.archived: list[ArchivedDeadLetter] = []

    async def commit(self, row: EventRow) -> None:
        if self.commit_fails is not None:
            raise self.commit_fails
        self.committed.append(row)

    async def publish(self, delivery: Delivery, exc: BaseException) -> str:
        if self.dead_letter_topic_down:
            raise SinkUnavailable("dead-letter publish failed: ServiceUnavailable")
        self.dead_letters.append((delivery, exc))
        return "dl-1"

    async def write(self, record: ArchivedDeadLetter) -> None:
        self.archived.append(record)

    def processor(self) -> Processor:
        return Processor(SOURCES, commit=self.commit, dead_letters=self, archive=self)


def test_an_event_becomes_a_row_marked_where_a_value_does_not_convert() -> None:
    decision = decide(
        push(event_envelope({"lp_request_uuid": "L1", "lp_purchase_price": "N/A"})), SOURCES
    )
    assert isinstance(decision, Commit)
    assert decision.row.columns["lead_id"] == "L1"
    assert [p.field for p in decision.row.problems] == ["lp_purchase_price"]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"garbage", UndecodableDelivery),
        (json.dumps(event_envelope({}, source="unconfigured")).encode(), UnknownSource),
    ],
)
def test_what_is_not_a_hookpipe_event_is_a_dead_letter(body: bytes, error: type[Exception]) -> None:
    decision = decide(Push(body, {"content-type": "application/json"}), SOURCES)
    assert isinstance(decision, ToDeadLetterTopic)
    assert isinstance(decision.error, error)
    if error is UndecodableDelivery:
        assert decision.delivery.data == body  # kept as it came, for the dead letter


def test_a_committed_push_says_which_event_and_carries_its_trace() -> None:
    ports = Ports()
    event = replace(webhook_event({"lp_request_uuid": "L1"}), traceparent=TRACEPARENT)
    envelope = push_envelope(*to_message(event))

    outcome = asyncio.run(ports.processor().process(push(envelope)))

    assert outcome.result == "committed"
    assert outcome.error is None
    assert outcome.event_id == event.id
    assert (outcome.source, outcome.message_id, outcome.traceparent) == (
        "leadprosper",
        "m-1",
        TRACEPARENT,
    )
    assert [r.event_id for r in ports.committed] == [outcome.event_id]


def test_a_row_a_sink_refuses_is_dead_lettered_with_its_reason() -> None:
    ports = Ports()
    ports.commit_fails = RowRejected("bigquery", "payload: invalid")

    outcome = asyncio.run(
        ports.processor().process(push(event_envelope({"lp_request_uuid": "L1"})))
    )

    assert (outcome.result, outcome.error) == ("dead-lettered", None)
    assert outcome.reason == "RowRejected: bigquery rejected the row: payload: invalid"
    [(delivery, exc)] = ports.dead_letters
    assert exc is ports.commit_fails
    assert delivery.message_id == "m-1"


@pytest.mark.parametrize(
    "failure", [SinkUnavailable("postgres: down"), Overloaded("5000 rows already queued")]
)
def test_a_transient_failure_is_a_retry_and_nothing_is_dead_lettered(
    failure: Exception,
) -> None:
    ports = Ports()
    ports.commit_fails = failure

    outcome = asyncio.run(
        ports.processor().process(push(event_envelope({"lp_request_uuid": "L1"})))
    )

    assert (outcome.result, outcome.error) == ("retry", failure)
    assert ports.dead_letters == []


def test_a_dead_letter_that_cannot_be_published_is_a_retry() -> None:
    ports = Ports()
    ports.dead_letter_topic_down = True

    outcome = asyncio.run(ports.processor().process(Push(b"garbage", {})))

    assert outcome.result == "retry"
    assert isinstance(outcome.error, SinkUnavailable)


def test_the_archive_keeps_even_a_push_it_cannot_decode() -> None:
    ports = Ports()
    outcome = asyncio.run(ports.processor().archive(Push(b"\xff not json", {})))
    assert (outcome.result, outcome.error) == ("archived", None)
    assert [r.data for r in ports.archived] == [b"\xff not json"]
