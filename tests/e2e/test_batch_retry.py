"""The batch writer against the real PostgreSQL and BigQuery emulator: a batch rides out a short
Postgres restart by trying again on a fresh connection, gives up (503) when the outage outlasts
its budget, and does not retry failures that waiting cannot fix."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hookpipe.sources import load_source_configs
from hookpipe_worker.errors import SinkUnavailable
from hookpipe_worker.rows import EventRow
from hookpipe_worker.sinks.bigquery import BigQuerySink
from hookpipe_worker.sinks.postgres import PostgresSink, create_pool
from hookpipe_worker.writer import BatchResult, BatchWriter

from tests.events import lead_row
from tests.support import StackHandle

pytestmark = pytest.mark.stack
SOURCES = load_source_configs(Path(__file__).parents[2] / "infra/sources.toml")
NO_LEADS_ROLE = "hookpipe_test_no_leads"


def a_lead_row() -> EventRow:
    event_id = f"retry-test-{uuid.uuid4()}"
    return lead_row(event_id, lead_id=f"LP-{event_id}", payload_json='{"lp_lead_id": "retry-test"}')


async def commit(
    stack: StackHandle,
    rows: list[EventRow],
    *,
    retry_seconds: float,
    pool_timeout: float = 5.0,
    retries: list[tuple[int, str, float]],
    database_url: str | None = None,
    when_first_retried: Callable[[], None] | None = None,
) -> BatchResult:
    """Commit ``rows`` through a writer wired as the worker wires it; record each retry in
    ``retries``."""
    pool = create_pool(
        database_url or stack.stack.postgres.url, min_size=1, max_size=2, timeout=pool_timeout
    )
    await pool.open(wait=False)

    def record(attempt: int, exc: BaseException, delay: float) -> None:
        retries.append((attempt, f"{type(exc).__name__}: {exc}", delay))
        if attempt == 1 and when_first_retried is not None:
            when_first_retried()

    bigquery = BigQuerySink(stack.bq, f"{stack.project_id}.hookpipe.raw_events", 10.0)
    writer = BatchWriter(
        PostgresSink(pool, SOURCES),
        bigquery,
        retry_seconds=retry_seconds,
        deadline_seconds=45,
        on_retry=record,
    )
    try:
        return await writer.commit(rows)
    finally:
        await pool.close()


@pytest.fixture
def postgres_stopped(stack: StackHandle) -> Iterator[None]:
    """Postgres is down when the test starts; it is running again when the test ends."""
    postgres = stack.stack.postgres
    postgres.stop()
    try:
        yield
    finally:
        if postgres.process is None or not postgres.process.alive():
            postgres.start()


@pytest.mark.usefixtures("postgres_stopped")
def test_a_batch_rides_out_a_postgres_restart(stack: StackHandle) -> None:
    rows = [a_lead_row(), a_lead_row()]
    retries: list[tuple[int, str, float]] = []

    # Postgres comes back while the writer backs off after its first failed attempt.
    result = asyncio.run(
        commit(
            stack,
            rows,
            retry_seconds=10.0,
            retries=retries,
            when_first_retried=stack.stack.postgres.start,
        )
    )

    ids = [r.event_id for r in rows]
    assert result == dict.fromkeys(ids)  # committed in both sinks, no request answered 503
    assert [attempt for attempt, _, _ in retries][:1] == [1]  # it did fail first
    assert set(stack.pg_events(ids)) == set(ids)
    assert {r["event_id"] for r in stack.bq_rows("events", ids)} == set(ids)


@pytest.mark.usefixtures("postgres_stopped")
def test_an_outage_longer_than_the_budget_is_answered_503(stack: StackHandle) -> None:
    retries: list[tuple[int, str, float]] = []
    with pytest.raises(SinkUnavailable, match="postgres"):
        asyncio.run(
            commit(stack, [a_lead_row()], retry_seconds=1.0, pool_timeout=0.3, retries=retries)
        )
    delays = [delay for _, _, delay in retries]
    assert len(delays) >= 2
    assert delays == sorted(delays)  # backing off, not hammering
    assert sum(delays) <= 1.0  # no attempt starts after the budget


@pytest.fixture
def role_without_leads_table(stack: StackHandle) -> Iterator[str]:
    """A login that may write events (past row-level security, as Supabase's service role does)
    but not the LeadProsper current-state table."""
    stack.pg(
        f"DROP ROLE IF EXISTS {NO_LEADS_ROLE}; CREATE ROLE {NO_LEADS_ROLE} LOGIN BYPASSRLS;"
        f"GRANT USAGE ON SCHEMA hookpipe TO {NO_LEADS_ROLE};"
        f"GRANT SELECT, INSERT, DELETE ON hookpipe.events TO {NO_LEADS_ROLE};"
    )
    try:
        yield stack.stack.postgres.url.replace("postgres@", f"{NO_LEADS_ROLE}@")
    finally:
        stack.pg(f"DROP OWNED BY {NO_LEADS_ROLE}; DROP ROLE {NO_LEADS_ROLE};")


def test_a_failure_waiting_cannot_fix_goes_straight_back_to_pubsub(
    stack: StackHandle, role_without_leads_table: str
) -> None:
    """A permission error (a deploy that forgot a grant) is not retried in the worker: its pushes
    are answered 503 at once, and the events already inserted in the batch are rolled back."""
    row = a_lead_row()
    retries: list[tuple[int, str, float]] = []
    with pytest.raises(SinkUnavailable, match="InsufficientPrivilege"):
        asyncio.run(
            commit(
                stack,
                [row],
                retry_seconds=10.0,
                database_url=role_without_leads_table,
                retries=retries,
            )
        )
    assert retries == []
    assert stack.pg_events([row.event_id]) == {}
