"""Dead-letter operations against Pub/Sub (the emulator or Google Cloud): one function each.

Messages are pulled and *held* (ack deadline extended) while an operation looks at them, then
released (ack deadline 0) unless the operation consumed them. Replay acks a message only after
its republish is confirmed, so an interruption at any point loses nothing: at worst a message is
replayed twice, which the worker's idempotent writes absorb.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from google.api_core.exceptions import DeadlineExceeded
from google.cloud.pubsub_v1 import SubscriberClient
from hookpipe.deadletters import DeadLetter

from hookpipe_ops.deadletters import Filters, replayed_since
from hookpipe_ops.errors import RepublishFailed
from hookpipe_ops.republish import Republisher

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


@dataclass
class ReplaySummary:
    scanned: int = 0
    selected: int = 0
    replayed: int = 0
    failed: int = 0
    # Replayed by this run and dead-lettered again before it ended: left for the next run.
    failed_again: int = 0
    letters: list[DeadLetter] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """What ``--json`` prints of it."""
        return {
            "scanned": self.scanned,
            "selected": self.selected,
            "replayed": self.replayed,
            "failed": self.failed,
            "failed_again": self.failed_again,
            "messages": [letter.as_dict(80) for letter in self.letters],
        }


def replay(
    subscriber: SubscriberClient,
    republisher: Republisher,
    subscription: str,
    filters: Filters,
    *,
    max_messages: int,
    dry_run: bool,
    scan_limit: int,
    on_progress: Callable[[DeadLetter, str], None] = lambda letter, outcome: None,
) -> ReplaySummary:
    summary = ReplaySummary()
    started = datetime.now(UTC)
    scan = Scan(subscriber, subscription, scan_limit)
    try:
        for letter in scan:
            if not filters.matches(letter):
                continue
            if replayed_since(letter, started):
                summary.failed_again += 1
                continue  # held, then released untouched with the rest
            if summary.selected >= max_messages:
                continue
            summary.selected += 1
            summary.letters.append(letter)
            if dry_run:
                on_progress(letter, "would replay")
                continue
            republisher.wait_turn()
            scan.keep_holding()
            try:
                new_id = republisher.republish(letter)
            except RepublishFailed as exc:
                summary.failed += 1
                on_progress(letter, f"failed: {exc}")
                continue
            scan.ack(letter)  # only now: the republish is confirmed
            summary.replayed += 1
            on_progress(letter, f"replayed as {new_id}")
    finally:
        scan.release_all()
        summary.scanned = scan.scanned
    return summary
