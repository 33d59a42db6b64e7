"""The invariant checker of the fault-injection suite.

After the system drains: every webhook answered 2xx is exactly once in the Postgres events table
and exactly once in BigQuery's dedup view, marked exactly where it should be; current-state rows
hold the newest status (or, for the drift scenario, each column's newest converted value); every
poison message is in the dead-letter subscription with its reason; nothing else of the run is
there.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tests.support import StackHandle


@dataclass
class Run:
    """What one scenario sent, by event id."""

    name: str
    sent: int = 0
    accepted: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> body
    poison: dict[str, str] = field(default_factory=dict)  # id or marker -> expected error class
    newest_status: dict[str, str] = field(default_factory=dict)  # lead id -> status
    # id -> the fields its problems name ("(body)" for a body that did not parse); ids not listed
    # must have no problems.
    marked: dict[str, set[str]] = field(default_factory=dict)
    # lead id -> {column: value} the current-state row must hold
    expected_state: dict[str, dict[str, Any]] = field(default_factory=dict)
    dead_letters: dict[str, dict[str, str]] = field(default_factory=dict)  # filled by check()


def check(stack: StackHandle, run: Run, timeout: float = 180.0) -> dict[str, int]:
    good = [i for i in run.accepted if i not in run.poison]
    stack.wait_committed(good, timeout=timeout)
    ours = set(run.accepted) | set(run.poison)

    def key(attrs: dict[str, str]) -> str | None:
        return attrs.get("ce-id") or attrs.get("test-marker")

    taken = stack.take_dead_letters(
        lambda attrs, _: key(attrs) in ours,
        lambda found: set(run.poison) <= {key(a) for a, _ in found},
        timeout=timeout,
        settle_pulls=2,
    )
    dead = {str(key(attrs)): attrs for attrs, _ in taken}
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
    problems = dict(
        stack.pg("SELECT event_id, problems FROM hookpipe.events WHERE event_id = ANY(%s)", [good])
    )
    marked = {i: {p["field"] for p in v} for i, v in problems.items() if v is not None}
    assert marked == {i: f for i, f in run.marked.items() if i in problems}, "marked as expected"
    bq_marked = {
        r["event_id"]: {p["field"] for p in r["problems"]}
        for r in stack.bq_rows("events", good, columns="problems")
        if r["problems"] is not None
    }
    assert bq_marked == marked, "BigQuery marks what Postgres marks"
    tallies["marked"] = len(marked)
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
    if run.expected_state:
        columns = sorted({c for state in run.expected_state.values() for c in state})
        select = ", ".join(columns)
        stored = {
            r[0]: dict(zip(columns, r[1:], strict=True))
            for r in stack.pg(
                f"SELECT lead_id, {select} FROM hookpipe.leadprosper_leads WHERE lead_id = ANY(%s)",
                [list(run.expected_state)],
            )
        }
        assert stored == run.expected_state, "current state is the fold of converted values"
    return tallies
