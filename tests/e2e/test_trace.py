"""``hookpipe trace`` on the real stack: a lead with three status events that landed; one that was
spooled while Pub/Sub was paused and drained; one dead-lettered and replayed; one marked; one
still in flight while BigQuery is paused. Each gets the right stages and verdict, by event id
and by lp_request_uuid (an idempotency header's event id is computed, not looked up:
tests/unit/test_trace.py), with the exit code the verdict implies; a key that matches nothing
exits 2; sender content is printed escaped."""

from __future__ import annotations

import json
import signal
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from hookpipe.sources import load_source_configs
from hookpipe_ops.trace import lookup_for
from hookpipe_ops.trace_sources import RECENT, PostgresTrace, recent_event_ids
from psycopg import sql

from tests.e2e.test_cli import REPO, cli
from tests.support import StackHandle, lead, postgres_refuses, wait_for

pytestmark = pytest.mark.stack


def trace(stack: StackHandle, *argv: str) -> subprocess.CompletedProcess[str]:
    s = stack.stack
    return cli(
        stack,
        "trace",
        *argv,
        env={
            "HOOKPIPE_DATABASE_URL": s.postgres.url,
            "HOOKPIPE_BIGQUERY_ENDPOINT": s.bigquery.url,
            "HOOKPIPE_SPOOL_BUCKET": s.storage.bucket,
            "STORAGE_EMULATOR_HOST": s.storage.url,
            "HOOKPIPE_LOGS_DIR": str(s.state_dir / "logs"),
            "COLUMNS": "220",
        },
    )


def traced(stack: StackHandle, *argv: str, code: int | None = None) -> list[dict[str, Any]]:
    result = trace(stack, *argv, "--json")
    if code is not None:
        assert result.returncode == code, result.stdout + result.stderr
    events: list[dict[str, Any]] = json.loads(result.stdout)["events"]
    return events


def stages(event: dict[str, Any]) -> list[str]:
    return [step["stage"] for step in event["timeline"]]


def landed(stack: StackHandle, event_id: str) -> dict[str, Any]:
    """The event's trace once it has landed in both sinks (BigQuery's view trails Postgres)."""
    return wait_for(
        lambda: next((e for e in traced(stack, event_id) if e["verdict"] == "landed"), None),
        60,
        f"{event_id} traced as landed",
    )


@contextmanager
def paused(process: Any) -> Iterator[None]:
    process.signal(signal.SIGSTOP)
    try:
        yield
    finally:
        process.signal(signal.SIGCONT)


def test_a_leads_three_status_events_are_found_by_its_uuid_and_each_landed(
    stack: StackHandle,
) -> None:
    uuid_ = str(uuid.uuid4())
    statuses = [("ACCEPTED", "2026-12-03 10:00:00"), ("SOLD", "2026-12-03 10:01:00"),
                ("DUPLICATED", "2026-12-03 09:59:00")]  # fmt: skip
    ids = []
    for status, at in statuses:
        response = stack.post(lead(lp_request_uuid=uuid_, lp_status=status, lp_timestamp=at))
        assert response.status_code == 202
        ids.append(response.json()["event_id"])
    for event_id in ids:
        landed(stack, event_id)

    events = traced(stack, uuid_, code=0)
    assert sorted(e["event_id"] for e in events) == sorted(ids)
    assert {e["verdict"] for e in events} == {"landed"}
    for event in events:
        assert stages(event)[:3] == ["received", "delivered", "committed"]
        assert event["timeline"][0]["what"].startswith("answered 202, published")
        assert event["postgres"]["origin"] == "webhook"
    # Current state moved to the newest status (SOLD at 10:01), and names the event that did.
    moved = {e["event_id"]: e["current_state"]["moved_by_this_event"] for e in events}
    assert moved == {ids[0]: False, ids[1]: True, ids[2]: False}
    assert {e["current_state"]["status"] for e in events} == {"SOLD"}

    [one] = traced(stack, ids[1], code=0)
    assert one["event_id"] == ids[1]
    text = trace(stack, ids[1])
    assert text.returncode == 0
    assert "verdict: landed in both sinks" in text.stdout


def test_a_marked_event_shows_its_problems_and_still_landed(stack: StackHandle) -> None:
    response = stack.post(lead(lp_purchase_price="N/A"))
    event_id = response.json()["event_id"]
    event = landed(stack, event_id)
    problems = event["postgres"]["problems"]
    assert [p["field"] for p in problems] == ["lp_purchase_price"]
    assert event["bigquery"]["problems"] == problems
    committed = next(s for s in event["timeline"] if s["stage"] == "committed")
    assert "marked: 1 problem(s) (lp_purchase_price)" in committed["what"]


def test_an_event_spooled_while_pubsub_was_paused_is_in_flight_then_drained(
    stack: StackHandle,
) -> None:
    emulator = stack.stack.pubsub.process
    assert emulator is not None
    with paused(emulator):
        response = stack.post(lead())
        assert response.status_code == 202
        event_id = response.json()["event_id"]
        [waiting] = wait_for(lambda: traced(stack, event_id), 30, "the ingest line")
        assert waiting["verdict"] == "in-flight"
        assert waiting["spool"] == f"spool/{event_id}"
        assert "spooled" in stages(waiting)
        listed = traced(stack, "--recent", "--spooled", "--limit", "200")
        assert event_id in [e["event_id"] for e in listed]
    event = landed(stack, event_id)
    assert "drained" in stages(event)
    assert event["spool"] is None
    assert event["timeline"][0]["what"].startswith("answered 202, spooled")


def test_a_dead_lettered_event_says_how_to_replay_it_and_lands_once_replayed(
    stack: StackHandle,
) -> None:
    with postgres_refuses(stack, {"refuse_row": "22023"}):
        response = stack.post(lead(refuse_row="yes"))
        event_id = response.json()["event_id"]
        [dead] = wait_for(
            lambda: [e for e in traced(stack, event_id) if e["dead_letters"]], 90, "archived"
        )
    assert dead["verdict"] == "dead-lettered"
    [letter] = dead["dead_letters"]
    assert letter["error_class"] == "RowRejected"
    replay_command = f"hookpipe dlq replay --from-archive --message-id {letter['dead_letter_id']}"
    assert dead["next"] == replay_command
    assert trace(stack, event_id).returncode == 1
    stack.take_dead_letters(  # its live copy, so no other test sees it
        lambda attributes, _: attributes.get("ce-id") == event_id, lambda found: len(found) >= 1
    )

    replay = cli(stack, *replay_command.split()[1:], "--database-url", stack.stack.postgres.url)
    assert replay.returncode == 0, replay.stderr
    event = landed(stack, event_id)
    assert {"dead-lettered", "replayed", "committed"} <= set(stages(event))


def test_an_event_bigquery_is_holding_up_is_in_flight_and_bigquery_unknown(
    stack: StackHandle,
) -> None:
    emulator = stack.stack.bigquery.process
    assert emulator is not None
    with paused(emulator):
        response = stack.post(lead())
        event_id = response.json()["event_id"]
        [waiting] = wait_for(lambda: traced(stack, event_id), 30, "the ingest line")
        assert waiting["verdict"] == "in-flight"
        assert waiting["bigquery"] == "unknown"  # paused: not answering, never "absent"
        assert waiting["postgres"] is None
        assert "no push to the worker has finished yet" in waiting["verdict_line"]
    landed(stack, event_id)


def test_a_key_that_matches_nothing_exits_2_and_prints_it_escaped(stack: StackHandle) -> None:
    hostile = "[red]no-such[/]\x1b[41m"
    result = trace(stack, hostile)
    assert result.returncode == 2
    assert "nothing matched" in result.stderr
    assert "\x1b" not in result.stderr
    assert "[red]no-such[/]\\x1b[41m" in result.stderr


def test_sender_content_in_a_trace_is_printed_escaped(stack: StackHandle) -> None:
    response = stack.post(lead(lp_status="[bold]SOLD[/]\x1b[2J"))
    event_id = response.json()["event_id"]
    landed(stack, event_id)
    result = trace(stack, event_id)
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout
    assert "[bold]SOLD[/]\\x1b[2J" in result.stdout


def test_recent_lists_the_last_marked_events_with_their_verdicts(stack: StackHandle) -> None:
    response = stack.post(lead(lp_sold_price="not a price"))
    event_id = response.json()["event_id"]
    landed(stack, event_id)
    events = traced(stack, "--recent", "--problems", "--source", "leadprosper", "--limit", "5")
    assert event_id in [e["event_id"] for e in events]
    assert all(e["postgres"]["problems"] for e in events)


class Explaining:
    """A connection that answers each statement with its plan (and no rows), seq scans off: a
    look-up no index can serve still plans a Seq Scan, so the plan says whether one exists."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.plans: list[str] = []

    def execute(self, query: Any, params: Any = None) -> Any:
        statement = query if isinstance(query, sql.Composable) else sql.SQL(query)
        rows = self.conn.execute(sql.SQL("EXPLAIN ") + statement, params).fetchall()
        self.plans.append("\n".join(r[0] for r in rows))
        return self.conn.execute("SELECT 1 WHERE false")


def test_every_look_up_is_served_by_an_index(stack: StackHandle) -> None:
    sources = load_source_configs(REPO / "infra/sources.toml")
    with psycopg.connect(stack.stack.postgres.url, autocommit=True) as conn:
        conn.execute("SET enable_seqscan = off")
        explaining = Explaining(conn)
        store = PostgresTrace(explaining, sources)
        lookup = lookup_for("some-key", sources, datetime.now(UTC), lead_statuses={})
        store.events(lookup)
        store.archived(lookup, ["e1"])
        store.current_state("leadprosper", "some-key")
        for kind in RECENT:
            recent_event_ids(explaining, kind, "leadprosper", 5)
            recent_event_ids(explaining, kind, None, 5)
    assert len(explaining.plans) == 3 + 2 * len(RECENT)
    for plan in explaining.plans:
        assert "Seq Scan" not in plan, plan
