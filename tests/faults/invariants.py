"""The invariant checker of the fault-injection suite.

After the system drains: every webhook answered 2xx is exactly once in the Postgres events table
and exactly once in BigQuery's dedup view; current-state rows hold the newest status; every poison
message is in the dead-letter subscription with its reason; nothing else of the run is there.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from google.api_core.exceptions import DeadlineExceeded
from google.cloud.pubsub_v1 import SubscriberClient

from tests.support import StackHandle


@dataclass
class Run:
    """What one scenario sent, by event id."""

    name: str
    sent: int = 0
    accepted: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> body
    poison: dict[str, str] = field(default_factory=dict)  # id or marker -> expected error class
    newest_status: dict[str, str] = field(default_factory=dict)  # lead id -> status
    dead_letters: dict[str, dict[str, str]] = field(default_factory=dict)  # filled by check()


def _drain_dead_letters(stack: StackHandle, run: Run, timeout: float) -> dict[str, dict[str, str]]:
    """Pull the dead-letter subscription until every poison of the run is there (ack those of the
    run, release the rest) and a little longer, so that extras would be seen too."""
    sub = SubscriberClient()
    path = sub.subscription_path(stack.project_id, "hookpipe-dead-letter-pull")
    found: dict[str, dict[str, str]] = {}
    ours = set(run.accepted) | set(run.poison)
    deadline = time.monotonic() + timeout
    empty_pulls_after_complete = 0
    try:
        while time.monotonic() < deadline:
            try:
                response = sub.pull(subscription=path, max_messages=500, timeout=3)
            except DeadlineExceeded:
                response = None
            mine, others = [], []
            for received in response.received_messages if response else []:
                attrs = dict(received.message.attributes)
                key = attrs.get("ce-id") or attrs.get("test-marker")
                if key in ours:
                    found[key] = attrs
                    mine.append(received.ack_id)
                else:
                    others.append(received.ack_id)
            if mine:
                sub.acknowledge(subscription=path, ack_ids=mine)
            if others:
                sub.modify_ack_deadline(subscription=path, ack_ids=others, ack_deadline_seconds=0)
            if set(run.poison) <= set(found):
                empty_pulls_after_complete += 0 if mine else 1
                if empty_pulls_after_complete >= 2:
                    break
    finally:
        sub.close()
    return found


def check(stack: StackHandle, run: Run, timeout: float = 180.0) -> dict[str, int]:
    good = [i for i in run.accepted if i not in run.poison]
    stack.wait_committed(good, timeout=timeout)
    dead = _drain_dead_letters(stack, run, timeout)
    run.dead_letters.update(dead)

    pg = stack.pg("SELECT event_id FROM hookpipe.events WHERE event_id = ANY(%s)", [good])
    raw = stack.bq_rows("raw_events", good)
    dedup = stack.bq_rows("events", good)
    dedup_counts = Counter(r["event_id"] for r in dedup)
    poison_in_sinks = stack.pg_events(run.poison)

    tallies = {
        "sent": run.sent,
        "accepted": len(run.accepted),
        "in PG": len(pg),
        "in BQ raw": len(raw),
        "in BQ dedup": len(dedup),
        "in DLQ": len(dead),
        "poison": len(run.poison),
    }
    print(f"\n[{run.name}] " + ", ".join(f"{k}: {v}" for k, v in tallies.items()))

    assert sorted(r[0] for r in pg) == sorted(good), "Postgres: every accepted event exactly once"
    assert set(dedup_counts) == set(good), "BigQuery dedup view: every accepted event"
    assert max(dedup_counts.values(), default=1) == 1, "BigQuery dedup view: exactly once"
    assert len(raw) >= len(good)
    assert poison_in_sinks == {}, "no poison message in Postgres"
    assert set(dead) == set(run.poison), (
        f"dead letters: missing {set(run.poison) - set(dead)}, extra {set(dead) - set(run.poison)}"
    )
    for key, expected_class in run.poison.items():
        assert dead[key].get("hookpipe-error-class") == expected_class, (key, dead[key])
        assert dead[key].get("hookpipe-error-message")
    if run.newest_status:
        rows = dict(
            stack.pg(
                "SELECT lead_id, status FROM hookpipe.leadprosper_leads WHERE lead_id = ANY(%s)",
                [list(run.newest_status)],
            )
        )
        assert rows == run.newest_status, "current state holds each lead's newest status"
    return tallies
