"""The Storage Write sink on the BigQuery emulator's own gRPC server: a row it refuses fails alone
while its batch-mates land, one connection serves every batch, and a stopped emulator costs only
the batches sent while it was down (the connection is opened again once it is back)."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace

import pytest
from hookpipe_worker.errors import RowRejected, SinkUnavailable
from hookpipe_worker.rows import EventRow
from hookpipe_worker.sinks.storage_write import (
    AppendStream,
    RowEncoder,
    StorageWriteSink,
    TableWriter,
    table_encoder,
    write_client,
)

from tests.events import lead_row
from tests.support import StackHandle

pytestmark = pytest.mark.stack


def rows(n: int) -> list[EventRow]:
    run = uuid.uuid4().hex[:8]
    return [lead_row(f"sw-{run}-{i}", lead_id=f"LP-sw-{run}-{i}") for i in range(n)]


def sink_for(stack: StackHandle, streams: list[AppendStream], timeout: float) -> StorageWriteSink:
    table = f"{stack.project_id}.hookpipe.raw_events"
    endpoint = f"127.0.0.1:{stack.stack.bigquery.grpc_port}"

    def connect(encoder: RowEncoder) -> AppendStream:
        stream = AppendStream(lambda: write_client(endpoint), table, encoder.schema)
        streams.append(stream)
        return stream

    return StorageWriteSink(TableWriter(table_encoder(stack.bq, table, timeout), connect, timeout))


def test_a_row_bigquery_refuses_fails_alone_and_its_batch_mates_land(stack: StackHandle) -> None:
    batch = rows(4)
    # A value the table's NUMERIC column refuses (the mapping would have marked it: this plays
    # a value only BigQuery knows it cannot hold).
    batch[2] = replace(batch[2], columns={**batch[2].columns, "purchase_price": "twelve"})
    streams: list[AppendStream] = []

    async def scenario() -> tuple[dict[str, RowRejected], dict[str, RowRejected]]:
        sink = sink_for(stack, streams, 10.0)
        first = await sink.insert(batch)
        second = await sink.insert(rows(3))  # the same connection, again
        return first, second

    first, second = asyncio.run(scenario())
    assert list(first) == [batch[2].event_id]
    assert "numeric" in str(first[batch[2].event_id]).lower()
    assert second == {}
    assert len(streams) == 1  # one connection for every batch
    landed = {r["event_id"] for r in stack.bq_rows("raw_events", [r.event_id for r in batch])}
    assert landed == {r.event_id for r in batch} - {batch[2].event_id}


def test_a_stopped_emulator_fails_the_batch_and_the_next_one_after_it_is_back_lands(
    stack: StackHandle,
) -> None:
    emulator = stack.stack.bigquery
    during, after = rows(2), rows(2)
    streams: list[AppendStream] = []

    async def scenario() -> None:
        sink = sink_for(stack, streams, 3.0)
        assert await sink.insert(rows(1)) == {}  # the connection is open
        emulator.stop()
        try:
            with pytest.raises(SinkUnavailable):
                await sink.insert(during)
        finally:
            emulator.start()
        assert await sink.insert(after) == {}

    asyncio.run(scenario())
    landed = {r["event_id"] for r in stack.bq_rows("raw_events", [r.event_id for r in after])}
    assert landed == {r.event_id for r in after}
