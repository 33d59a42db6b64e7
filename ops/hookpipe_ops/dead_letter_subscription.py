"""The dead-letter pull subscription (the emulator or Google Cloud), as operators look at it.

Messages are pulled and *held* (ack deadline extended) while an operation looks at them, then
released (ack deadline 0) unless the operation consumed them: a replay
(:func:`hookpipe_ops.replay.replay`) acks one only after its republish is confirmed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC

from google.api_core.exceptions import DeadlineExceeded
from google.cloud.pubsub_v1 import SubscriberClient
from hookpipe.deadletters import DeadLetter

from hookpipe_ops.deadletters import Filters

PULL_BATCH = 100
# An empty subscription answers a pull only when this runs out: it ends every scan.
PULL_WAIT_SECONDS = 2
# How long a message stays invisible to others while an operation looks at it. Kept short and
# renewed while the operation runs, so messages held by a killed run reappear within this time.
HOLD_SECONDS = 30
RENEW_EVERY_SECONDS = 10
MAX_ACK_IDS_PER_REQUEST = 1000  # a bound under Pub/Sub's 512 KB request size


@dataclass
class _Held:
    ack_id: str
    letter: DeadLetter


@dataclass
class Scan:
    """Pulls every message once, holding each until released or acked."""

    subscriber: SubscriberClient
    subscription: str
    limit: int
    held: dict[str, _Held] = field(default_factory=dict)
    scanned: int = 0
    renewed_at: float = field(default_factory=time.monotonic)

    def keep_holding(self) -> None:
        """Renew the hold on everything held, at most every RENEW_EVERY_SECONDS."""
        if time.monotonic() - self.renewed_at < RENEW_EVERY_SECONDS or not self.held:
            return
        self._set_deadline([h.ack_id for h in self.held.values()], HOLD_SECONDS)
        self.renewed_at = time.monotonic()

    def _set_deadline(self, ack_ids: list[str], seconds: int) -> None:
        for start in range(0, len(ack_ids), MAX_ACK_IDS_PER_REQUEST):
            self.subscriber.modify_ack_deadline(
                subscription=self.subscription,
                ack_ids=ack_ids[start : start + MAX_ACK_IDS_PER_REQUEST],
                ack_deadline_seconds=seconds,
            )

    def __iter__(self) -> Iterator[DeadLetter]:
        seen: set[str] = set()
        while self.scanned < self.limit:
            try:
                response = self.subscriber.pull(
                    subscription=self.subscription,
                    max_messages=min(PULL_BATCH, self.limit - self.scanned),
                    timeout=PULL_WAIT_SECONDS,
                )
            except DeadlineExceeded:
                return
            fresh = []
            for received in response.received_messages:
                message = received.message
                if message.message_id in seen:  # redelivered while held: keep holding it
                    if message.message_id in self.held:
                        self.held[message.message_id].ack_id = received.ack_id
                    continue
                seen.add(message.message_id)
                self.scanned += 1
                letter = DeadLetter(
                    message_id=message.message_id,
                    publish_time=message.publish_time.astimezone(UTC),
                    data=bytes(message.data),
                    attributes=dict(message.attributes),
                )
                self.held[letter.message_id] = _Held(received.ack_id, letter)
                fresh.append(letter)
            self._set_deadline([r.ack_id for r in response.received_messages], HOLD_SECONDS)
            if not fresh:
                return
            yield from fresh

    def ack(self, letter: DeadLetter) -> None:
        held = self.held.pop(letter.message_id)
        self.subscriber.acknowledge(subscription=self.subscription, ack_ids=[held.ack_id])

    def release_all(self) -> None:
        self._set_deadline([h.ack_id for h in self.held.values()], 0)
        self.held.clear()


def collect(
    subscriber: SubscriberClient, subscription: str, filters: Filters, limit: int
) -> list[DeadLetter]:
    """The dead letters matching ``filters`` (at most ``limit`` scanned); nothing is consumed."""
    scan = Scan(subscriber, subscription, limit)
    try:
        return [letter for letter in scan if filters.matches(letter)]
    finally:
        scan.release_all()


class SubscriptionLetters:
    """The dead-letter subscription as a :class:`~hookpipe_ops.replay.ReplaySource`: what
    ``filters`` select of at most ``limit`` messages, each held until acked or released."""

    def __init__(
        self, subscriber: SubscriberClient, subscription: str, filters: Filters, limit: int
    ) -> None:
        self._scan = Scan(subscriber, subscription, limit)
        self._filters = filters

    @property
    def scanned(self) -> int:
        return self._scan.scanned

    def __iter__(self) -> Iterator[DeadLetter]:
        return (letter for letter in self._scan if self._filters.matches(letter))

    def keep_holding(self) -> None:
        self._scan.keep_holding()

    def whole(self, letter: DeadLetter) -> DeadLetter:
        return letter  # a pulled message is whole

    def replayed(self, letter: DeadLetter) -> None:
        self._scan.ack(letter)

    def release(self) -> None:
        self._scan.release_all()
