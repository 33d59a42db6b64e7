"""The worker's use case: one push in, one outcome out. The counterpart of ingest's ``accept.py``.

:func:`decide` is pure (the push's bytes and headers, and the sources' configuration): the push is
decoded into a delivery, the delivery into a hookpipe event, the event into a row — *marked* where
a value or the body could not be understood (``hookpipe_worker.rows``), never refused for it. Only
what is not a hookpipe event at all (a push that is neither a Pub/Sub message nor a CloudEvent, an
envelope without hookpipe's attributes, a source this worker does not know) is a dead letter.

:class:`Processor` carries the decision out through its ports:

* ``committed``      the row is in both sinks (group commit: ``hookpipe_worker.writer``);
* ``dead-lettered``  published to the dead-letter topic with its reason — also a row a sink
                     refused for its values even after marking (``RowRejected``);
* ``archived``       a dead letter kept in the archive (``hookpipe_worker.dead_letters``);
* ``retry``          anything that may succeed later (a sink down, overload, shutdown, the
                     dead-letter topic unreachable): answered non-2xx, Pub/Sub redelivers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Literal

from hookpipe.errors import error_class
from hookpipe.event import WebhookEvent, from_message
from hookpipe.sources import SourceConfig

from hookpipe_worker.dead_letters import archive_record
from hookpipe_worker.delivery import Delivery, decode_delivery
from hookpipe_worker.errors import PERMANENT, UndecodableDelivery
from hookpipe_worker.ports import Archive, DeadLetterTopic
from hookpipe_worker.rows import EventRow, build_row

type Result = Literal["committed", "dead-lettered", "archived", "retry"]


@dataclass(frozen=True, slots=True)
class Push:
    """A push request as the worker receives it: its bytes, and its headers (lower-case names)."""

    body: bytes
    headers: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Commit:
    """Write ``row`` to both sinks."""

    delivery: Delivery
    event: WebhookEvent
    row: EventRow


@dataclass(frozen=True, slots=True)
class ToDeadLetterTopic:
    """Not a hookpipe event (or a row no sink can hold): publish it to the dead-letter topic with
    ``error`` as the reason. (A decision; the message it becomes is a
    :class:`hookpipe.deadletters.DeadLetter`.)"""

    delivery: Delivery
    event: WebhookEvent | None
    error: BaseException


type Decision = Commit | ToDeadLetterTopic


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one push, with what its log line says about it."""

    result: Result
    event_id: str | None = None
    source: str | None = None
    message_id: str | None = None
    delivery_attempt: int | None = None
    traceparent: str | None = None  # the webhook's, carried by its event
    reason: str | None = None  # why it was dead-lettered or is to be retried
    error: BaseException | None = None  # a retry's cause: it decides the status Pub/Sub sees


def decide(push: Push, sources: Mapping[str, SourceConfig]) -> Decision:
    """What to do with ``push``. Pure; raises nothing a push's content can cause."""
    delivery: Delivery | None = None
    event: WebhookEvent | None = None
    try:
        delivery = decode_delivery(push.body, push.headers)
        event = from_message(delivery.data, delivery.attributes)
        return Commit(delivery, event, build_row(event, delivery, sources))
    except PERMANENT as exc:
        return ToDeadLetterTopic(delivery or Delivery(data=push.body, attributes={}), event, exc)


def _reason(exc: BaseException) -> str:
    return f"{error_class(exc)}: {exc}"


def _outcome(
    result: Result, decision: Decision, *, reason: str | None = None, error: BaseException | None
) -> Outcome:
    event = decision.event
    return Outcome(
        result,
        event_id=event.id if event else None,
        source=event.source if event else None,
        message_id=decision.delivery.message_id,
        delivery_attempt=decision.delivery.delivery_attempt,
        traceparent=event.traceparent if event else None,
        reason=reason,
        error=error,
    )


class Processor:
    """The worker's two use cases over its ports: process an event push, archive a dead letter."""

    def __init__(
        self,
        sources: Mapping[str, SourceConfig],
        *,
        commit: Callable[[EventRow], Awaitable[None]],
        dead_letters: DeadLetterTopic,
        archive: Archive,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """``commit``: wait until the row is in both sinks (the group-commit batcher's
        ``submit``); raises ``RowRejected`` for a row a sink refuses, a ``TransientFailure``
        otherwise."""
        self.sources = sources
        self._commit = commit
        self._dead_letters = dead_letters
        self._archive = archive
        self._now = now

    async def process(self, push: Push) -> Outcome:
        decision = decide(push, self.sources)
        try:
            if isinstance(decision, Commit):
                try:
                    await self._commit(decision.row)
                except PERMANENT as exc:  # a sink refused the row's values even after marking
                    decision = ToDeadLetterTopic(decision.delivery, decision.event, exc)
                else:
                    return _outcome("committed", decision, error=None)
            await self._dead_letters.publish(decision.delivery, decision.error)
            return _outcome("dead-lettered", decision, reason=_reason(decision.error), error=None)
        except Exception as exc:  # answered non-2xx: Pub/Sub redelivers
            return _outcome("retry", decision, reason=_reason(exc), error=exc)

    async def archive(self, push: Push) -> Outcome:
        """Keep one dead letter in the archive, whatever it holds: the archive refuses nothing."""
        try:
            delivery = decode_delivery(push.body, push.headers)
        except UndecodableDelivery:  # kept as it came
            delivery = Delivery(data=push.body, attributes={})
        record = archive_record(delivery, self._now())
        outcome = Outcome(
            "archived",
            event_id=record.event_id,
            source=record.source,
            message_id=record.dead_letter_id,
            reason=record.error_class,
        )
        try:
            await self._archive.write(record)
        except Exception as exc:  # answered non-2xx: Pub/Sub redelivers
            return replace(outcome, result="retry", reason=_reason(exc), error=exc)
        return outcome
