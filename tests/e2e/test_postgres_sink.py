"""The Postgres sink against the real PostgreSQL: one row's failure never holds back its
batch-mates, each failure is classed as the row's own (dead-letter) or passing (retry), and a lost
connection comes out of the adapter as an interruption the writer retries, never as psycopg's."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from hookpipe_worker.errors import RowRejected, SinkInterrupted, SinkUnavailable
from hookpipe_worker.rows import EventRow
from hookpipe_worker.sinks.postgres import PostgresSink, create_pool

from tests.support import StackHandle, postgres_refuses

pytestmark = pytest.mark.stack


@pytest.fixture
def failing_trigger(stack: StackHandle) -> Iterator[None]:
    # 55000 (object not in prerequisite state): passing. 22023 (invalid parameter): the row's own.
    with postgres_refuses(stack, {"busy_in_postgres": "55000", "invalid_in_postgres": "22023"}):
        yield


def row(payload: str) -> EventRow:
    return EventRow(
        event_id=f"sink-test-{uuid.uuid4()}",
        source="leadprosper",
        event_type="com.leadprosper.campaign_trigger",
        received_at=datetime.now(UTC),
        content_type="application/json",
        payload_json=payload,
        pubsub_message_id=None,
    )


async def insert_and_commit(
    database_url: str, rows: list[EventRow]
) -> tuple[set[str], dict[str, object]]:
    pool = create_pool(database_url, min_size=1, max_size=1, timeout=5)
    await pool.open()
    try:
        async with PostgresSink(pool, {}).transaction() as tx:
            inserted, failed = await tx.insert(sorted(rows, key=lambda r: r.event_id))
        return inserted, dict(failed)
    finally:
        await pool.close()


@pytest.mark.usefixtures("failing_trigger")
def test_failures_stay_with_their_row_and_batch_mates_commit(stack: StackHandle) -> None:
    good = [row('{"ok": 1}'), row('{"ok": 2}')]
    busy, invalid = row('{"busy_in_postgres": true}'), row('{"invalid_in_postgres": true}')
    inserted, failed = asyncio.run(
        insert_and_commit(stack.stack.postgres.url, [*good, busy, invalid])
    )

    assert inserted == {r.event_id for r in good}
    assert set(stack.pg_events([r.event_id for r in [*good, busy, invalid]])) == inserted
    assert isinstance(failed[busy.event_id], SinkUnavailable)  # answered 503: Pub/Sub retries
    assert "busy_in_postgres (test trigger)" in str(failed[busy.event_id])
    assert isinstance(failed[invalid.event_id], RowRejected)  # dead-lettered with its reason
    assert "SQLSTATE 22023" in str(failed[invalid.event_id])
    assert failed.keys() == {busy.event_id, invalid.event_id}


@pytest.mark.usefixtures("failing_trigger")
def test_a_lone_row_that_cannot_go_in_yet_is_retried(stack: StackHandle) -> None:
    busy = row('{"busy_in_postgres": true}')
    inserted, failed = asyncio.run(insert_and_commit(stack.stack.postgres.url, [busy]))
    assert inserted == set()
    assert isinstance(failed[busy.event_id], SinkUnavailable)


def test_a_lost_connection_fails_the_whole_batch(stack: StackHandle) -> None:
    """Not a row's failure: nothing can be isolated on a dead connection, so the batch is
    retried as a whole (the writer answers 503 for every row)."""

    rows = [row('{"ok": 1}'), row('{"ok": 2}')]

    async def insert_on_a_killed_connection() -> BaseException | None:
        pool = create_pool(stack.stack.postgres.url, min_size=1, max_size=1, timeout=5)
        await pool.open()
        try:
            async with PostgresSink(pool, {}).transaction() as tx:
                stack.pg("SELECT pg_terminate_backend(%s)", [tx.conn.info.backend_pid])
                await tx.insert(rows)
        except SinkUnavailable as exc:
            return exc
        finally:
            await pool.close()
        return None

    assert isinstance(asyncio.run(insert_on_a_killed_connection()), SinkInterrupted)
    assert stack.pg_events([r.event_id for r in rows]) == {}


def test_a_row_psycopg_cannot_even_encode_fails_alone(stack: StackHandle) -> None:
    """A lone surrogate raises UnicodeEncodeError in psycopg (not a psycopg.Error). The worker's
    rows never carry one (hookpipe.problems.storable replaces them), but if one ever did it must
    fail alone, as the row's own fault, not its whole batch."""
    good = [row('{"ok": 1}'), row('{"ok": 2}')]
    bad = row('{"note": "\ud800"}')
    inserted, failed = asyncio.run(insert_and_commit(stack.stack.postgres.url, [*good, bad]))
    assert inserted == {r.event_id for r in good}
    assert isinstance(failed[bad.event_id], RowRejected)
    assert "UnicodeEncodeError" in str(failed[bad.event_id])


def test_a_key_whose_state_postgres_refuses_fails_alone(stack: StackHandle) -> None:
    """Values no mapping should let through (it bounds them: tests/unit/test_mapping.py), given
    to the adapter directly: a numeric Postgres cannot hold (22003) and a key over the index's
    row size (54000). Each fails its own key; the batch's other keys move."""
    from decimal import Decimal
    from pathlib import Path

    from hookpipe.sources import load_source_configs

    from tests.events import lead_row

    config = load_source_configs(Path(__file__).parents[2] / "infra/sources.toml")["leadprosper"]
    assert config.current_state is not None
    tag = uuid.uuid4().hex[:8]
    good = [lead_row(f"cs-{tag}-{i}", lead_id=f"CS-{tag}-{i}") for i in range(3)]
    tiny = lead_row(f"cs-{tag}-tiny", lead_id=f"CS-{tag}-tiny")
    tiny.columns["purchase_price"] = Decimal("1E-20000")
    # Random, so that Postgres cannot compress it under the index's row limit.
    long_key = lead_row(f"cs-{tag}-long", lead_id=f"CS-{tag}-" + secrets.token_hex(5000))

    async def upsert() -> dict[str, str]:
        pool = create_pool(stack.stack.postgres.url, min_size=1, max_size=1, timeout=5)
        await pool.open()
        try:
            async with PostgresSink(pool, {"leadprosper": config}).transaction() as tx:
                refused = await tx.upsert_current_state([*good, tiny, long_key])
                return dict(refused["leadprosper"])
        finally:
            await pool.close()

    refused = asyncio.run(upsert())
    assert refused.keys() == {tiny.event_id, long_key.event_id}
    assert "SQLSTATE 22003" in refused[tiny.event_id]
    assert "SQLSTATE 54000" in refused[long_key.event_id]
    stored = stack.pg(
        "SELECT lead_id FROM hookpipe.leadprosper_leads WHERE lead_id LIKE %s", [f"CS-{tag}-%"]
    )
    assert sorted(r[0] for r in stored) == sorted(r.columns["lead_id"] for r in good)
