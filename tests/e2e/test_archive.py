"""The dead-letter archive on the real stack: dead letters of both kinds (the worker's, and
Pub/Sub's after the maximum delivery attempts) land once each in hookpipe.dead_letters in
Postgres and BigQuery, and a replay from the archive lands exactly once."""

from __future__ import annotations

import json
from typing import Any

import pytest
from google.cloud import bigquery

from tests.e2e.test_cli import cli, cli_json, ids_filter
from tests.support import StackHandle, lead, postgres_refuses, wait_for

pytestmark = pytest.mark.stack


def _archived_pg(stack: StackHandle, event_id: str) -> list[tuple[Any, ...]]:
    return stack.pg(
        "SELECT dead_letter_id, error_class, delivery_attempts, replayed_at "
        "FROM hookpipe.dead_letters WHERE event_id = %s ORDER BY dead_lettered_at",
        [event_id],
    )


def _archived_bq(stack: StackHandle, event_id: str) -> list[dict[str, Any]]:
    job = stack.bq.query(
        "SELECT dead_letter_id, error_class, data"
        f" FROM `{stack.project_id}.hookpipe.dead_letters` WHERE event_id = @id",
        job_config=bigquery.QueryJobConfig(
            query_parameters=[bigquery.ScalarQueryParameter("id", "STRING", event_id)]
        ),
    )
    return [dict(row) for row in job.result()]


def _drain_live(stack: StackHandle, event_ids: list[str]) -> None:
    """Take this test's letters off the pull subscription, so other tests do not see them."""
    stack.take_dead_letters(
        lambda attributes, _: attributes.get("ce-id") in event_ids,
        lambda found: len(found) >= len(event_ids),
    )


def test_dead_letters_of_both_kinds_are_archived_once_and_replay_from_the_archive(
    stack: StackHandle,
) -> None:
    # 22023: the worker dead-letters it at once (RowRejected). 55000: passing, so the worker
    # answers 503 until Pub/Sub gives up and forwards it (MaxDeliveryAttempts).
    with postgres_refuses(stack, {"refuse_row": "22023", "refuse_busy": "55000"}):
        rejected = stack.post(lead(refuse_row="yes"))
        busy = stack.post(lead(refuse_busy="yes"))
        assert rejected.status_code == busy.status_code == 202
        ids = [rejected.json()["event_id"], busy.json()["event_id"]]
        for event_id in ids:
            wait_for(lambda i=event_id: _archived_pg(stack, i), 90, f"{event_id} archived")
    _drain_live(stack, ids)
    [(_, worker_class, worker_attempts, _)] = _archived_pg(stack, ids[0])
    [(_, pubsub_class, pubsub_attempts, _)] = _archived_pg(stack, ids[1])
    assert (worker_class, pubsub_class) == ("RowRejected", "MaxDeliveryAttempts")
    assert pubsub_attempts == 5
    assert worker_attempts is None or worker_attempts >= 1
    for event_id, error_class in zip(ids, (worker_class, pubsub_class), strict=True):
        [row] = _archived_bq(stack, event_id)
        assert row["error_class"] == error_class
        assert b"refuse_" in row["data"]
    assert stack.pg_events(ids) == {}

    # The cause is fixed (the trigger is gone) and the live copies are gone (as after 7 days):
    # replay from the archive.
    env = ("--database-url", stack.stack.postgres.url)
    stats = cli_json(stack, "dlq", "stats", *env)
    assert stats["archive"]["by_reason"]["RowRejected"] >= 1
    assert stats["archive"]["not_replayed"] >= 2
    peeked = cli_json(stack, "dlq", "peek", "--from-archive", *ids_filter(ids), *env)
    assert {(m["event_id"], m["reason"]) for m in peeked} == {
        (ids[0], "RowRejected"),
        (ids[1], "MaxDeliveryAttempts"),
    }
    dry = cli_json(stack, "dlq", "replay", "--from-archive", "--dry-run", *ids_filter(ids), *env)
    assert dry["selected"] == 2
    assert dry["replayed"] == 0
    result = cli(stack, "dlq", "replay", "--from-archive", *ids_filter(ids), *env, "--json")
    assert result.returncode == 0, result.stderr
    replayed = json.loads(result.stdout)
    assert (replayed["replayed"], replayed["failed"]) == (2, 0)
    # One audit line per replayed message, as a live replay writes (docs/operations.md).
    audit = [json.loads(x) for x in result.stderr.splitlines() if '"dlq.replay"' in x]
    assert sorted(a["event_id"] for a in audit) == sorted(ids)
    assert {a["replayed_from"] for a in audit} == {"archive"}
    stack.wait_committed(ids)
    assert all(r[3] is not None for i in ids for r in _archived_pg(stack, i))
    # Run again: already replayed, so nothing is selected; forced, it still lands once.
    again = cli_json(stack, "dlq", "replay", "--from-archive", *ids_filter(ids), *env)
    assert again["selected"] == 0
    assert cli_json(stack, "dlq", "peek", "--from-archive", *ids_filter(ids), *env) == []
    replayed_rows = ("--from-archive", "--include-replayed", *ids_filter(ids), *env)
    assert len(cli_json(stack, "dlq", "peek", *replayed_rows)) == 2
    forced = cli_json(
        stack, "dlq", "replay", "--from-archive", "--include-replayed", *ids_filter(ids), *env
    )
    assert forced["replayed"] == 2
    wait_for(lambda: len(stack.bq_rows("raw_events", ids)) >= 2, what="the forced replay's rows")
    assert len(stack.pg_events(ids)) == 2
    assert sorted(r["event_id"] for r in stack.bq_rows("events", ids)) == sorted(ids)


@pytest.mark.parametrize("command", ["replay", "peek"])
def test_the_archive_needs_a_database(stack: StackHandle, command: str) -> None:
    result = cli(stack, "dlq", command, "--from-archive", "--attr", "ce-id=x")
    assert result.returncode == 2
    assert "--database-url" in result.stderr


def test_the_archive_is_filtered_and_limited_in_the_database(stack: StackHandle) -> None:
    """peek/replay --from-archive read only the rows they show or replay, and of each row's
    data only a preview: the same selection as Filters.matches, computed in SQL."""
    import json
    import uuid
    from datetime import UTC, datetime, timedelta

    import psycopg
    from hookpipe_ops import dead_letter_archive as archive
    from hookpipe_ops.deadletters import Filters

    tag = uuid.uuid4().hex[:8]
    t0 = datetime.now(UTC) - timedelta(hours=1)
    rows = []
    for i in range(12):
        # As the worker archives them: the columns are what the attributes say.
        attributes = {"ce-id": f"{tag}-{i}", "ce-source": "/sources/leadprosper" if i % 3 else ""}
        if i % 2:
            attributes["hookpipe-error-class"] = "RowRejected"
        else:
            attributes["CloudPubSubDeadLetterSourceDeliveryCount"] = "5"
        rows.append(
            (f"{tag}-dl-{i}", f"{tag}-{i}", "leadprosper" if i % 3 else None,
             "RowRejected" if i % 2 else "MaxDeliveryAttempts", "r", t0 + timedelta(minutes=i),
             json.dumps(attributes), b"x" * (5_000_000 if i == 4 else 100))
        )  # fmt: skip
    stack.pg(
        "INSERT INTO hookpipe.dead_letters (dead_letter_id, event_id, source, error_class, "
        "reason, dead_lettered_at, attributes, data) "
        "SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], "
        "%s::timestamptz[], %s::jsonb[], %s::bytea[])",
        [list(column) for column in zip(*rows, strict=True)],
    )
    mine = {"ce-id": frozenset(f"{tag}-{i}" for i in range(12))}
    cases = [
        Filters(attributes=mine),
        Filters(attributes=mine, error_classes=frozenset({"RowRejected"})),
        Filters(attributes=mine, sources=frozenset({"(none)"})),
        Filters(attributes=mine, message_ids=frozenset({f"{tag}-dl-4", f"{tag}-dl-5"})),
        Filters(attributes=mine, since=t0 + timedelta(minutes=3), until=t0 + timedelta(minutes=8)),
        Filters(
            attributes={"ce-id": frozenset({f"{tag}-1", f"{tag}-3"}), "ce-source": frozenset({""})}
        ),
    ]  # fmt: skip
    with psycopg.connect(stack.stack.postgres.url) as conn:
        everything = archive.archived(conn, Filters(attributes=mine), include_replayed=True,
                                      limit=100, data_bytes=None)  # fmt: skip
        assert len(everything) == 12
        for filters in cases:
            expected = [letter.message_id for letter in everything if filters.matches(letter)]
            for limit in (2, 100):
                got = archive.archived(conn, filters, include_replayed=True, limit=limit)
                assert [letter.message_id for letter in got] == expected[:limit], filters
                assert all(len(letter.data) <= archive.PREVIEW_BYTES for letter in got)
