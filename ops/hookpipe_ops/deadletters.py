"""Dead letters as operators select, count and replay them: filters, times given on the command
line, stats, replay attributes. Pure; the attributes themselves are the contract in
:mod:`hookpipe.deadletters`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from hookpipe.deadletters import (
    ORIGINAL_MESSAGE_ID,
    PUBSUB_DEAD_LETTER_ATTRIBUTES,
    REASON_ATTRIBUTES,
    REPLAY_COUNT,
    REPLAYED_AT,
    DeadLetter,
    parse_timestamp,
    timestamp,
)
from hookpipe.text import is_ascii_digits


@dataclass(frozen=True)
class Filters:
    """Which dead letters an operation selects. Empty filters select everything.

    Attribute filters with the same key are alternatives (``--attr ce-id=a --attr ce-id=b``);
    different keys must all match. Every filter is applied here, not as a subscription filter:
    the emulator accepts subscription filters but does not apply them.
    """

    attributes: Mapping[str, frozenset[str]] = field(default_factory=dict)
    error_classes: frozenset[str] = frozenset()
    sources: frozenset[str] = frozenset()
    message_ids: frozenset[str] = frozenset()
    since: datetime | None = None
    until: datetime | None = None

    def matches(self, letter: DeadLetter) -> bool:
        for key, values in self.attributes.items():
            if letter.attributes.get(key) not in values:
                return False
        return (
            (not self.error_classes or letter.reason in self.error_classes)
            and (not self.sources or letter.source in self.sources)
            and (not self.message_ids or letter.message_id in self.message_ids)
            and (self.since is None or letter.publish_time >= self.since)
            and (self.until is None or letter.publish_time < self.until)
        )

    @property
    def empty(self) -> bool:
        return not (
            self.attributes
            or self.error_classes
            or self.sources
            or self.message_ids
            or self.since
            or self.until
        )


def parse_attribute_filters(pairs: Sequence[str]) -> dict[str, frozenset[str]]:
    result: dict[str, set[str]] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--attr {pair!r}: expected KEY=VALUE")
        result.setdefault(key, set()).add(value)
    return {k: frozenset(v) for k, v in result.items()}


def parse_time(text: str, now: datetime) -> datetime:
    """ISO 8601 (UTC when no offset), or an age before ``now``: ``90s``, ``15m``, ``2h``, ``7d``."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if text and text[-1] in units and is_ascii_digits(text[:-1]):
        return now - timedelta(seconds=int(text[:-1]) * units[text[-1]])
    return parse_timestamp(text)


def replayed_since(letter: DeadLetter, since: datetime) -> bool:
    """Whether ``letter`` is a message replayed at or after ``since`` that failed again. A replay
    run must not pick up what it replayed itself: a message whose cause is not fixed would go
    round (dead-letter topic → replay → worker → dead-letter topic) until the scan limit. The
    replay's own timestamp is compared, not Pub/Sub's publish time: same clock, no skew."""
    try:
        return parse_timestamp(letter.attributes.get(REPLAYED_AT, "")) >= since
    except ValueError:  # never replayed, or not a time
        return False


def replay_attributes(letter: DeadLetter, now: datetime) -> dict[str, str]:
    """The attributes a replayed message is published with: the original ones (the CloudEvent
    the worker decodes), without the dead-letter reason, plus its history (first message, first
    failure) and the replay's own bookkeeping."""
    attributes = {
        k: v
        for k, v in letter.attributes.items()
        if k not in PUBSUB_DEAD_LETTER_ATTRIBUTES
        and k not in REASON_ATTRIBUTES
        and k not in (REPLAY_COUNT, REPLAYED_AT, ORIGINAL_MESSAGE_ID)
    }
    previous = letter.attributes.get(REPLAY_COUNT, "0")
    count = int(previous) + 1 if is_ascii_digits(previous) else 1
    attributes[REPLAY_COUNT] = str(count)
    attributes[ORIGINAL_MESSAGE_ID] = letter.attributes.get(ORIGINAL_MESSAGE_ID, letter.message_id)
    attributes[REPLAYED_AT] = timestamp(now)
    return attributes


AGE_BUCKETS = ((3600, "< 1h"), (86400, "< 1d"), (7 * 86400, "< 7d"))


def age_bucket(seconds: float) -> str:
    return next((name for limit, name in AGE_BUCKETS if seconds < limit), "≥ 7d")


@dataclass(frozen=True)
class Stats:
    """What ``hookpipe dlq stats`` reports of the live dead letters."""

    total: int
    oldest_age_seconds: float | None
    by: dict[str, dict[str, int]]  # "reason", "source", "age" -> value -> count, largest first


def stats(letters: Sequence[DeadLetter], now: datetime) -> Stats:
    ages = [letter.age(now).total_seconds() for letter in letters]
    return Stats(
        total=len(letters),
        oldest_age_seconds=max(ages, default=None),
        by={
            "reason": dict(Counter(letter.reason for letter in letters).most_common()),
            "source": dict(Counter(letter.source for letter in letters).most_common()),
            "age": dict(Counter(age_bucket(a) for a in ages).most_common()),
        },
    )
