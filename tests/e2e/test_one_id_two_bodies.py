"""Two bodies with one event id end the same in both sinks, on the real PostgreSQL and BigQuery
emulator: the copy ingest received first.

How they meet: instance A commits body A, BigQuery takes it, and A's Postgres commit is lost
(its pushes are answered 503, so Pub/Sub redelivers them); instance B commits body B with the
same id. BigQuery now holds both, Postgres only B. The `events` view and Postgres both keep the
earlier-received of the two, so once A's message is redelivered and commits they agree, whichever
came first.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hookpipe.sources import load_source_configs
from hookpipe_worker.errors import SinkUnavailable
from hookpipe_worker.rows import EventRow
from hookpipe_worker.sinks.bigquery import BigQuerySink
from hookpipe_worker.sinks.postgres import PostgresSink, PostgresTransaction, create_pool
from hookpipe_worker.writer import BatchWriter

from tests.events import lead_row
from tests.support import StackHandle

pytestmark = pytest.mark.stack
SOURCES = load_source_configs(Path(__file__).parents[2] / "infra/sources.toml")


class CommitLost:
    """The real Postgres sink, whose commit is lost after the row log (BigQuery) was written."""

    def __init__(self, sink: PostgresSink) -> None:
        self.sink = sink

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PostgresTransaction]:
        async with self.sink.transaction() as tx:
            yield tx
            raise SinkUnavailable("postgres: the commit was lost with the connection")


async def commit(stack: StackHandle, row: EventRow, *, lose_commit: bool = False) -> bool:
    pool = create_pool(stack.stack.postgres.url, min_size=1, max_size=1, timeout=5)
    await pool.open()
    sink = PostgresSink(pool, SOURCES)
    bigquery = BigQuerySink(stack.bq, f"{stack.project_id}.hookpipe.raw_events", 10.0)
    writer = BatchWriter(CommitLost(sink) if lose_commit else sink, bigquery,
                         retry_seconds=0, deadline_seconds=45)  # fmt: skip
    try:
        result = await writer.commit([row])
    except SinkUnavailable:
        return False
    finally:
        await pool.close()
    return result[row.event_id] is None


@pytest.mark.parametrize("lost_first", ["earlier", "later"])
def test_both_sinks_keep_the_body_ingest_received_first(
    stack: StackHandle, lost_first: str
) -> None:
    event_id = f"two-bodies-{uuid.uuid4()}"
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    base = lead_row(event_id, lead_id=f"LP-{event_id}", at=t0)
    earlier = replace(base, payload_json='{"body": "earlier"}', pubsub_message_id="m-1")
    later = replace(base, received_at=t0 + timedelta(seconds=3),
                    payload_json='{"body": "later"}', pubsub_message_id="m-2")  # fmt: skip
    lost, other = (earlier, later) if lost_first == "earlier" else (later, earlier)

    assert not asyncio.run(commit(stack, lost, lose_commit=True))  # answered 503: redelivered
    assert asyncio.run(commit(stack, other))
    assert asyncio.run(commit(stack, lost))  # the redelivery

    [(_, _, _, pg_payload)] = stack.pg_events([event_id]).values()
    [view_row] = stack.bq_rows("events", [event_id])
    assert len(stack.bq_rows("raw_events", [event_id])) >= 2  # both bodies reached BigQuery
    assert pg_payload == view_row["payload"] == {"body": "earlier"}
    [(received_at, message_id)] = stack.pg(
        "SELECT received_at, pubsub_message_id FROM hookpipe.events WHERE event_id = %s",
        [event_id],
    )
    assert (received_at, message_id) == (t0, "m-1")
