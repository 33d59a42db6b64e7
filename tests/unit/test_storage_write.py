"""The Storage Write sink's own logic, with a fake append connection that answers as BigQuery's
default stream does: an append with a bad row appends none of its rows and names the bad ones
(``row_errors``); a request over 10 MB is refused whole. The real stream is exercised on the
emulator by the e2e and fault suites (the worker's default sink)."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from google.auth.exceptions import DefaultCredentialsError
from google.cloud import bigquery
from google.cloud.bigquery_storage_v1 import types
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.rpc import code_pb2
from hookpipe_worker.errors import RowRejected, SinkUnavailable
from hookpipe_worker.rows import MAX_INSERT_ALL_BYTES, EventRow, bigquery_row
from hookpipe_worker.sinks.archive import storage_write_rows
from hookpipe_worker.sinks.storage_write import (
    AppendStream,
    RowEncoder,
    StorageWriteSink,
    TableWriter,
)

from tests.events import lead_row

SCHEMA = Path(__file__).resolve().parents[2] / "infra/bigquery/raw_events.schema.json"
FIELDS = [bigquery.SchemaField.from_api_repr(f) for f in json.loads(SCHEMA.read_text())]
APPEND_LIMIT = 10 * 1024 * 1024  # what production BigQuery refuses beyond
T0 = datetime(2026, 12, 4, 9, tzinfo=UTC)
NOON = "2026-12-04T12:00:00Z"


def decode(encoder: RowEncoder, data: bytes) -> dict[str, object]:
    """What BigQuery reads from ``data``, by the schema the connection sent."""
    pool = descriptor_pool.DescriptorPool()
    file = descriptor_pb2.FileDescriptorProto(name="t.proto", package="t", syntax="proto2")
    file.message_type.add().CopyFrom(encoder.schema.proto_descriptor)
    pool.Add(file)
    message = message_factory.GetMessageClass(pool.FindMessageTypeByName("t.Row"))
    parsed = message.FromString(data)
    return {f.name: v for f, v in parsed.ListFields()}


def micros(at: datetime) -> int:
    return int(at.timestamp()) * 1_000_000


class DefaultStream:
    """Appends as BigQuery's default stream answers them. ``refuse``: event ids whose rows are
    bad; ``fail``: answers to give (in turn) before behaving, an exception or a status code."""

    def __init__(
        self,
        encoder: RowEncoder,
        *,
        refuse: frozenset[str] = frozenset(),
        fail: Sequence[BaseException | int] = (),
        key: str = "event_id",
    ) -> None:
        self.encoder = encoder
        self.key = key
        self.refuse = refuse
        self.fail = list(fail)
        self.appends: list[list[str]] = []  # the event ids of each append that was taken
        self.rows: list[str] = []  # what the table holds

    async def append(self, rows: Sequence[bytes], seconds: float) -> types.AppendRowsResponse:
        assert seconds > 0
        if self.fail:
            failure = self.fail.pop(0)
            if isinstance(failure, BaseException):
                raise failure
            return types.AppendRowsResponse(error={"code": failure, "message": "try later"})
        ids = [str(decode(self.encoder, r)[self.key]) for r in rows]
        self.appends.append(ids)
        if sum(len(r) for r in rows) > APPEND_LIMIT:
            return types.AppendRowsResponse(
                error={"code": code_pb2.INVALID_ARGUMENT, "message": "request too large"}
            )
        bad = [i for i, event_id in enumerate(ids) if event_id in self.refuse]
        if bad:
            return types.AppendRowsResponse(
                error={"code": code_pb2.INVALID_ARGUMENT, "message": "Rows are invalid"},
                row_errors=[
                    types.RowError(
                        index=i,
                        code=types.RowError.RowErrorCode.FIELDS_ERROR,
                        message=f"row {i} is bad",
                    )
                    for i in bad
                ],
            )
        self.rows += ids
        return types.AppendRowsResponse(append_result={})


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def sink_on(stream: DefaultStream, clock: Clock | None = None) -> StorageWriteSink:
    clock = clock or Clock()

    async def load() -> RowEncoder:
        return stream.encoder

    writer = TableWriter(load, lambda _encoder: stream, 10.0, clock=clock, sleep=clock.sleep)
    return StorageWriteSink(writer)


def rows(n: int) -> list[EventRow]:
    return [lead_row(f"e{i:02d}", at=T0) for i in range(n)]


def test_the_rows_an_append_names_are_refused_and_their_batch_mates_appended_in_one_retry() -> None:
    encoder = RowEncoder(FIELDS)
    stream = DefaultStream(encoder, refuse=frozenset({"e03", "e07"}))
    result = asyncio.run(sink_on(stream).insert(rows(10)))

    assert set(result) == {"e03", "e07"}
    assert all(isinstance(r, RowRejected) for r in result.values())
    all_ids = [f"e{i:02d}" for i in range(10)]
    assert stream.appends == [all_ids, [i for i in all_ids if i not in {"e03", "e07"}]]
    assert sorted(stream.rows) == sorted(set(all_ids) - {"e03", "e07"})


def test_a_row_error_naming_no_row_of_the_append_fails_the_batch() -> None:
    class Confused(DefaultStream):
        async def append(self, rows: Sequence[bytes], seconds: float) -> types.AppendRowsResponse:
            return types.AppendRowsResponse(
                error={"code": code_pb2.INVALID_ARGUMENT}, row_errors=[types.RowError(index=99)]
            )

    with pytest.raises(SinkUnavailable, match="row 99 of 3"):
        asyncio.run(sink_on(Confused(RowEncoder(FIELDS))).insert(rows(3)))


def test_transient_failures_are_tried_again_within_the_timeout() -> None:
    clock = Clock()
    stream = DefaultStream(
        RowEncoder(FIELDS),
        fail=[SinkUnavailable("bigquery: connection reset"), code_pb2.UNAVAILABLE],
    )
    assert asyncio.run(sink_on(stream, clock).insert(rows(2))) == {}
    assert stream.rows == ["e00", "e01"]
    assert clock.slept == [0.1, 0.2]


def test_a_failure_that_does_not_pass_is_answered_at_once() -> None:
    clock = Clock()
    stream = DefaultStream(RowEncoder(FIELDS), fail=[code_pb2.PERMISSION_DENIED])
    with pytest.raises(SinkUnavailable, match="PERMISSION_DENIED"):
        asyncio.run(sink_on(stream, clock).insert(rows(2)))
    assert clock.slept == []


def test_an_outage_longer_than_the_timeout_is_sink_unavailable() -> None:
    clock = Clock()
    down = [SinkUnavailable("bigquery: unavailable")] * 100
    with pytest.raises(SinkUnavailable, match="unavailable"):
        asyncio.run(sink_on(DefaultStream(RowEncoder(FIELDS), fail=down), clock).insert(rows(1)))
    assert 9.0 <= clock.now <= 10.0


def test_a_value_the_column_cannot_hold_is_refused_alone_without_being_sent() -> None:
    encoder = RowEncoder(FIELDS)
    stream = DefaultStream(encoder)
    batch = rows(3)
    batch[1] = replace(batch[1], columns={**batch[1].columns, "event_time": "not a time"})
    result = asyncio.run(sink_on(stream).insert(batch))
    assert list(result) == ["e01"]
    assert "event_time" in str(result["e01"])
    assert stream.appends == [["e00", "e02"]]


def test_large_batches_are_split_under_the_append_limit_and_each_row_lands() -> None:
    encoder = RowEncoder(FIELDS)
    stream = DefaultStream(encoder)
    big = json.dumps({"notes": "x" * 3_000_000})
    batch = [replace(r, payload_json=big) for r in rows(8)]
    assert asyncio.run(sink_on(stream).insert(batch)) == {}
    assert sorted(stream.rows) == [r.event_id for r in batch]
    assert len(stream.appends) > 1


def test_a_row_at_the_size_limit_lands() -> None:
    encoder = RowEncoder(FIELDS)
    stream = DefaultStream(encoder)
    sink = sink_on(stream)
    row = lead_row("e00", at=T0)

    def encoded_size(payload_chars: int) -> int:
        sized = replace(row, payload_json="x" * payload_chars)
        return len(encoder.encode(bigquery_row(sized, T0)))

    # The payload that makes the encoded row exactly the limit (inserted_at's length is fixed).
    chars = MAX_INSERT_ALL_BYTES - encoded_size(0)
    while encoded_size(chars) > MAX_INSERT_ALL_BYTES:
        chars -= 1
    assert encoded_size(chars) == MAX_INSERT_ALL_BYTES
    at_limit = replace(row, payload_json="x" * chars)
    assert asyncio.run(sink.insert([at_limit])) == {}
    assert stream.rows == ["e00"]
    # One byte more, and it is refused alone (the worker marks such rows before: rows.fit_bigquery).
    over = replace(row, event_id="e01", payload_json="x" * (chars + 1))
    assert list(asyncio.run(sink.insert([over, lead_row("e02", at=T0)]))) == ["e01"]
    assert stream.rows == ["e00", "e02"]


def test_the_encoder_writes_each_type_as_the_storage_write_api_takes_it() -> None:
    encoder = RowEncoder(FIELDS)
    data = encoder.encode(
        {
            "event_id": "e1",
            "source": "leadprosper",
            "event_type": "t",
            "received_at": "2026-12-04T09:00:00.000001Z",
            "inserted_at": "2026-12-04T09:00:01+00:00",
            "payload": '{"a": 1}',
            "body": base64.b64encode(b"\x00\xff").decode(),
            "purchase_price": "12.50",
            "content_type": None,
        }
    )
    assert decode(encoder, data) == {
        "event_id": "e1",
        "source": "leadprosper",
        "event_type": "t",
        "received_at": micros(datetime(2026, 12, 4, 9, tzinfo=UTC)) + 1,
        "inserted_at": micros(datetime(2026, 12, 4, 9, 0, 1, tzinfo=UTC)),
        "payload": '{"a": 1}',
        "body": b"\x00\xff",
        "purchase_price": "12.50",
    }


@pytest.mark.parametrize(
    ("record", "why"),
    [
        ({"event_id": "e1", "source": "s", "event_type": "t", "inserted_at": NOON}, "received_at"),
        ({"event_id": 5}, "event_id"),
        ({"event_id": "e1", "no_such_column": "x"}, "no_such_column"),
        ({"event_id": "e1", "received_at": "2026-12-04T09:00:00"}, "received_at"),
    ],
)  # fmt: skip
def test_the_encoder_refuses_what_the_table_cannot_hold(
    record: dict[str, object], why: str
) -> None:
    with pytest.raises(ValueError, match=why):
        RowEncoder(FIELDS).encode(record)


def test_a_column_type_hookpipe_does_not_write_fails_at_start_up() -> None:
    with pytest.raises(ValueError, match="RECORD"):
        RowEncoder([*FIELDS, bigquery.SchemaField("nested", "RECORD", fields=FIELDS[:1])])


def test_an_archive_row_bigquery_refuses_is_not_archived() -> None:
    """The archive answers its push 204 only when both sinks hold the dead letter: a refused
    BigQuery row is SinkUnavailable (Pub/Sub retries the push), never silence."""
    schema = SCHEMA.parent / "dead_letters.schema.json"
    encoder = RowEncoder(
        [bigquery.SchemaField.from_api_repr(f) for f in json.loads(schema.read_text())]
    )
    stream = DefaultStream(encoder, refuse=frozenset({"d2"}), key="dead_letter_id")

    async def load() -> RowEncoder:
        return encoder

    write = storage_write_rows(TableWriter(load, lambda _e: stream, 10.0))

    def row(dead_letter_id: str) -> dict[str, object]:
        return {"dead_letter_id": dead_letter_id, "error_class": "RowRejected", "reason": "r",
                "dead_lettered_at": NOON, "attributes": "{}", "archived_at": NOON}  # fmt: skip

    asyncio.run(write(row("d1"), "d1"))
    with pytest.raises(SinkUnavailable, match="refused"):
        asyncio.run(write(row("d2"), "d2"))
    assert stream.rows == ["d1"]


def test_a_client_that_cannot_be_made_is_sink_unavailable_not_a_crash() -> None:
    """No credentials (or a bad endpoint) when the connection is opened: the batch is answered
    503 and Pub/Sub redelivers it, as for BigQuery down."""

    def no_credentials() -> Any:
        raise DefaultCredentialsError("Your default credentials were not found.")

    stream = AppendStream(no_credentials, "p.hookpipe.raw_events", RowEncoder(FIELDS).schema)
    with pytest.raises(SinkUnavailable, match="credentials"):
        asyncio.run(stream.append([b""], 1.0))
