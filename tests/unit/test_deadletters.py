"""What a replay republishes: the original CloudEvent attributes and the message's history, not
the last failure's reason or Pub/Sub's forwarding attributes. Pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hookpipe.deadletters import DeadLetter
from hookpipe_ops.deadletters import Stats, replay_attributes, replayed_since, stats

NOW = datetime(2026, 11, 27, 12, tzinfo=UTC)
CLOUDEVENT = {
    "ce-specversion": "1.0",
    "ce-id": "evt-1",
    "ce-source": "/sources/leadprosper",
    "ce-type": "com.leadprosper.campaign_trigger",
    "content-type": "application/json",
}


def letter(message_id: str, **extra: str) -> DeadLetter:
    return DeadLetter(message_id, NOW, b"{}", {**CLOUDEVENT, **extra})


def test_first_replay_drops_the_reason_and_starts_the_history() -> None:
    dead = letter(
        "m-1",
        **{
            "hookpipe-error-class": "RowRejected",
            "hookpipe-error-message": "postgres rejected the row: bad",
            "hookpipe-worker-revision": "rev-7",
            "hookpipe-delivery-attempt": "1",
            "hookpipe-first-failure-time": "2026-11-26T00:00:00Z",
            "hookpipe-original-message-id": "m-1",
        },
    )
    assert replay_attributes(dead, NOW) == {
        **CLOUDEVENT,
        "hookpipe-first-failure-time": "2026-11-26T00:00:00Z",
        "hookpipe-original-message-id": "m-1",
        "hookpipe-replay-count": "1",
        "hookpipe-replayed-at": "2026-11-27T12:00:00Z",
    }


def test_a_second_replay_counts_up_and_keeps_pointing_at_the_first_message() -> None:
    dead = letter(
        "m-9",
        **{
            "hookpipe-error-class": "MappingError",
            "hookpipe-error-message": "still bad",
            "hookpipe-first-failure-time": "2026-11-26T00:00:00Z",
            "hookpipe-original-message-id": "m-1",
            "hookpipe-replay-count": "1",
            "hookpipe-replayed-at": "2026-11-26T06:00:00Z",
        },
    )
    attributes = replay_attributes(dead, NOW)
    assert attributes["hookpipe-replay-count"] == "2"
    assert attributes["hookpipe-original-message-id"] == "m-1"
    assert attributes["hookpipe-first-failure-time"] == "2026-11-26T00:00:00Z"
    assert attributes["hookpipe-replayed-at"] == "2026-11-27T12:00:00Z"
    assert "hookpipe-error-class" not in attributes


def test_a_message_pubsub_forwarded_loses_the_forwarding_attributes() -> None:
    dead = letter(
        "m-3",
        CloudPubSubDeadLetterSourceDeliveryCount="5",
        CloudPubSubDeadLetterSourceSubscription="hookpipe-worker-push",
    )
    assert dead.reason == "MaxDeliveryAttempts"
    assert replay_attributes(dead, NOW) == {
        **CLOUDEVENT,
        "hookpipe-original-message-id": "m-3",
        "hookpipe-replay-count": "1",
        "hookpipe-replayed-at": "2026-11-27T12:00:00Z",
    }


def test_a_replay_run_recognises_what_it_replayed_itself() -> None:
    started = datetime(2026, 11, 27, 12, tzinfo=UTC)
    ours = letter("m-5", **{"hookpipe-replayed-at": "2026-11-27T12:00:01Z"})
    earlier_run = letter("m-6", **{"hookpipe-replayed-at": "2026-11-27T11:59:59Z"})
    never_replayed = letter("m-7")
    garbled = letter("m-8", **{"hookpipe-replayed-at": "noon"})
    assert replayed_since(ours, started)
    assert not replayed_since(earlier_run, started)
    assert not replayed_since(never_replayed, started)
    assert not replayed_since(garbled, started)


def test_a_replay_count_that_is_not_a_plain_number_starts_again_at_one() -> None:
    """'²' passes str.isdigit() but not int(): it must not stop a replay."""
    for count in ("²", "x", "-1"):
        attributes = replay_attributes(letter("m-1", **{"hookpipe-replay-count": count}), NOW)
        assert attributes["hookpipe-replay-count"] == "1"


def test_stats_count_by_reason_source_and_age_largest_first() -> None:
    def published(message_id: str, hours: float, reason: str, source: str) -> DeadLetter:
        return DeadLetter(
            message_id,
            NOW - timedelta(hours=hours),
            b"{}",
            {"hookpipe-error-class": reason, "ce-source": f"/sources/{source}"},
        )

    found = stats(
        [
            published("a", 0.5, "RowRejected", "leadprosper"),
            published("b", 2, "EnvelopeError", "leadprosper"),
            published("c", 30, "RowRejected", "other"),
            published("d", 200, "RowRejected", "leadprosper"),
        ],
        NOW,
    )
    assert found.total == 4
    assert found.oldest_age_seconds == 200 * 3600
    assert found.by["reason"] == {"RowRejected": 3, "EnvelopeError": 1}
    assert list(found.by["source"].items()) == [("leadprosper", 3), ("other", 1)]
    assert found.by["age"] == {"< 1h": 1, "< 1d": 1, "< 7d": 1, "≥ 7d": 1}
    assert stats([], NOW) == Stats(0, None, {"reason": {}, "source": {}, "age": {}})
