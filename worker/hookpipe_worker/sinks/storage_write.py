"""BigQuery's Storage Write API, default stream: the raw events table's writes.

Google recommends it over insertAll for new pipelines (lower price, rows mutable at once). The
default stream is at-least-once, as insertAll is, and the ``events`` view's de-duplication stays
the effectively-once guarantee (docs/delivery.md, "Why the Storage Write API").

* **Rows** are the records insertAll takes (:func:`hookpipe_worker.rows.bigquery_row`), encoded
  as protobuf messages of a descriptor made once from the table's own schema
  (:class:`RowEncoder`). A value the descriptor cannot hold is that row's fault alone.
* **One connection** (:class:`AppendStream`) is kept open and reused by every batch; appends on
  it are answered in order. A connection that failed or timed out is dropped, and the next append
  opens a new one.
* **Limits:** an append is at most 10 MB, so a batch is split as insertAll's was
  (:func:`~hookpipe_worker.sinks.bigquery.requests`).
* **Row errors:** an append with a bad row appends none of its rows and names the bad ones
  (``row_errors``); those are refused (dead-lettered, as before) and their batch-mates are
  appended again in one more append.
* **Transient errors** (the connection, UNAVAILABLE, INTERNAL, …) are retried, on a new
  connection, within ``timeout_seconds``; the writer's commit deadline bounds it all.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import grpc
from google.auth.exceptions import GoogleAuthError
from google.cloud import bigquery
from google.cloud.bigquery_storage_v1 import types
from google.cloud.bigquery_storage_v1.services.big_query_write.async_client import (
    BigQueryWriteAsyncClient,
)
from google.cloud.bigquery_storage_v1.services.big_query_write.transports import (
    BigQueryWriteGrpcAsyncIOTransport,
)
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import EncodeError
from google.rpc import code_pb2
from hookpipe.errors import error_class

from hookpipe_worker.errors import RowRejected, SinkUnavailable
from hookpipe_worker.rows import MAX_INSERT_ALL_BYTES, EventRow, bigquery_row
from hookpipe_worker.sinks.bigquery import BIGQUERY_ERRORS, requests

_F = descriptor_pb2.FieldDescriptorProto
# How each column type travels in the Storage Write API's protobuf rows.
PROTO_TYPES = {
    "STRING": _F.TYPE_STRING,
    "JSON": _F.TYPE_STRING,
    "NUMERIC": _F.TYPE_STRING,
    "BIGNUMERIC": _F.TYPE_STRING,
    "INTEGER": _F.TYPE_INT64,
    "INT64": _F.TYPE_INT64,
    "TIMESTAMP": _F.TYPE_INT64,  # microseconds since the epoch
    "BYTES": _F.TYPE_BYTES,
    "BOOLEAN": _F.TYPE_BOOL,
    "BOOL": _F.TYPE_BOOL,
    "FLOAT": _F.TYPE_DOUBLE,
    "FLOAT64": _F.TYPE_DOUBLE,
}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The append statuses worth another try on a new connection; any other is answered 503 at once.
TRANSIENT_CODES = frozenset(
    {
        code_pb2.UNAVAILABLE,
        code_pb2.INTERNAL,
        code_pb2.ABORTED,
        code_pb2.RESOURCE_EXHAUSTED,
        code_pb2.DEADLINE_EXCEEDED,
        code_pb2.UNKNOWN,
    }
)
FIRST_RETRY_DELAY = 0.1
MAX_RETRY_DELAY = 1.0


class RowEncoder:
    """Records (insertAll's shape: timestamps as RFC 3339, bytes as base64) as protobuf rows of
    one table, the descriptor made once from its schema."""

    def __init__(self, fields: Sequence[bigquery.SchemaField]) -> None:
        file = descriptor_pb2.FileDescriptorProto(
            name="hookpipe_row.proto", package="hookpipe", syntax="proto2"
        )
        message = file.message_type.add(name="Row")
        self._types: dict[str, str] = {}
        for number, field in enumerate(fields, 1):
            kind = field.field_type.upper()
            if field.mode == "REPEATED" or kind not in PROTO_TYPES:
                raise ValueError(
                    f"column {field.name}: {field.mode} {kind} is not written by hookpipe"
                )
            label = _F.LABEL_REQUIRED if field.mode == "REQUIRED" else _F.LABEL_OPTIONAL
            message.field.add(name=field.name, number=number, type=PROTO_TYPES[kind], label=label)
            self._types[field.name] = kind
        pool = descriptor_pool.DescriptorPool()
        pool.Add(file)
        descriptor = pool.FindMessageTypeByName("hookpipe.Row")
        self._message = message_factory.GetMessageClass(descriptor)
        proto = descriptor_pb2.DescriptorProto()
        descriptor.CopyToProto(proto)
        self.schema = types.ProtoSchema(proto_descriptor=proto)

    def encode(self, record: Mapping[str, Any]) -> bytes:
        """``record`` as a row; ValueError when the table cannot hold it (a value of the wrong
        kind, a required field missing, a field the table does not have)."""
        values: dict[str, Any] = {}
        for name, value in record.items():
            if value is None:
                continue
            kind = self._types.get(name)
            if kind is None:
                raise ValueError(f"{name}: no such field")
            try:
                values[name] = _proto_value(kind, value)
            except (TypeError, ValueError, OverflowError) as exc:
                raise ValueError(f"{name}: {kind} cannot hold {str(value)[:80]!r}") from exc
        try:
            return bytes(self._message(**values).SerializeToString())
        except EncodeError as exc:  # a REQUIRED field missing
            raise ValueError(str(exc)[:200]) from None
        except (TypeError, ValueError) as exc:  # out of range for the proto type
            raise ValueError(str(exc)[:200]) from None


def _proto_value(kind: str, value: Any) -> Any:
    match kind:
        case "TIMESTAMP":
            if isinstance(value, str):
                value = datetime.fromisoformat(value)
            if isinstance(value, datetime):
                if value.tzinfo is None:
                    raise ValueError("a timestamp without a zone")
                return (value - EPOCH) // timedelta(microseconds=1)
            raise TypeError(type(value).__name__)
        case "BYTES":
            return base64.b64decode(value, validate=True) if isinstance(value, str) else value
        case "INTEGER" | "INT64":
            if isinstance(value, bool):
                raise TypeError("bool")
            return int(value)
        case "BOOLEAN" | "BOOL":
            if not isinstance(value, bool):
                raise TypeError(type(value).__name__)
            return value
        case "FLOAT" | "FLOAT64":
            return float(value)
    if not isinstance(value, str):  # STRING, JSON (as text), NUMERIC (as its digits)
        raise TypeError(type(value).__name__)
    return value


class AppendConnection(Protocol):
    """Appends on one stream, answered in order (:class:`AppendStream`; tests give a fake)."""

    async def append(self, rows: Sequence[bytes], seconds: float) -> types.AppendRowsResponse:
        """The answer to appending ``rows``, within ``seconds``."""
        ...


class AppendStream:
    """One long-lived AppendRows connection to a table's default stream, shared by every batch.
    Opened at the first append; dropped when an append on it fails or times out (its order is then
    unknown), and opened again at the next, on a new channel: a channel whose server went away
    waits out gRPC's reconnect backoff, which can outlast the commit's deadline. Errors come out as
    :class:`SinkUnavailable`."""

    def __init__(
        self,
        make_client: Callable[[], BigQueryWriteAsyncClient],
        table_id: str,
        schema: types.ProtoSchema,
    ) -> None:
        project, dataset, table = table_id.split(".")
        self.stream = f"projects/{project}/datasets/{dataset}/tables/{table}/streams/_default"
        self._make_client = make_client
        self._schema = schema
        self._connection: _Connection | None = None
        self._closing: set[asyncio.Task[None]] = set()

    async def append(self, rows: Sequence[bytes], seconds: float) -> types.AppendRowsResponse:
        """The answer to appending ``rows``, within ``seconds``."""
        connection = self._connection
        if connection is None or connection.closed:
            try:
                client = self._make_client()
            except (GoogleAuthError, *BIGQUERY_ERRORS) as exc:  # no credentials, a bad endpoint
                raise _unavailable(exc) from None
            connection = self._connection = _Connection(client, self.stream, self._schema)
        try:
            async with asyncio.timeout(seconds):
                return await connection.append(rows)
        except TimeoutError:
            self._drop(connection)
            raise SinkUnavailable(
                f"bigquery: no answer to an append within {seconds:.3g} s"
            ) from None
        except SinkUnavailable:
            self._drop(connection)
            raise

    def _drop(self, connection: _Connection) -> None:
        if self._connection is connection:
            self._connection = None
        task = asyncio.get_running_loop().create_task(connection.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)


class _Connection:
    def __init__(
        self, client: BigQueryWriteAsyncClient, stream: str, schema: types.ProtoSchema
    ) -> None:
        self._client = client
        self._stream = stream
        self._schema = schema
        self._requests: asyncio.Queue[types.AppendRowsRequest | None] = asyncio.Queue()
        self._waiting: deque[asyncio.Future[types.AppendRowsResponse]] = deque()
        self._reader: asyncio.Task[None] | None = None
        self.closed = False

    async def append(self, rows: Sequence[bytes]) -> types.AppendRowsResponse:
        if self.closed:
            raise SinkUnavailable("bigquery: the append connection is closed")
        request = types.AppendRowsRequest(
            write_stream=self._stream,
            proto_rows=types.AppendRowsRequest.ProtoData(
                rows=types.ProtoRows(serialized_rows=list(rows))
            ),
        )
        if self._reader is None:  # the connection's first request carries the row schema
            request.proto_rows.writer_schema = self._schema
        future: asyncio.Future[types.AppendRowsResponse] = (
            asyncio.get_running_loop().create_future()
        )
        self._waiting.append(future)
        self._requests.put_nowait(request)
        if self._reader is None:
            self._reader = asyncio.create_task(self._read())
        return await future

    async def _outgoing(self) -> AsyncIterator[types.AppendRowsRequest]:
        while (request := await self._requests.get()) is not None:
            yield request

    async def _read(self) -> None:
        try:
            call = await self._client.append_rows(
                requests=self._outgoing(),
                # Routes the connection to the table's region.
                metadata=(("x-goog-request-params", f"write_stream={self._stream}"),),
            )
            async for response in call:
                if not self._waiting:
                    raise SinkUnavailable("bigquery: an answer to no append")
                future = self._waiting.popleft()
                if not future.done():
                    future.set_result(response)
            raise SinkUnavailable("bigquery: the append connection ended")
        except Exception as exc:
            self._fail(exc if isinstance(exc, SinkUnavailable) else _unavailable(exc))
        except asyncio.CancelledError:
            self._fail(SinkUnavailable("bigquery: the append connection was closed"))
            raise

    def _fail(self, exc: SinkUnavailable) -> None:
        self.closed = True
        while self._waiting:
            future = self._waiting.popleft()
            if not future.done():
                future.set_exception(exc)

    async def close(self) -> None:
        """Fail what is waiting, end the call and close its channel."""
        if not self.closed:
            self.closed = True
            self._requests.put_nowait(None)  # half-closes the request stream
            if self._reader is not None:
                self._reader.cancel()
            self._fail(SinkUnavailable("bigquery: the append connection was closed"))
        with contextlib.suppress(Exception):
            await self._client.transport.close()


def _unavailable(exc: BaseException) -> SinkUnavailable:
    return SinkUnavailable(f"bigquery: {error_class(exc)}: {str(exc)[:300]}")


# A channel of its own subchannels, reconnecting soon: gRPC shares subchannels among a process's
# channels, so a new channel to a server that went away would wait out the old one's backoff.
CHANNEL_OPTIONS = (
    ("grpc.use_local_subchannel_pool", 1),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", -1),
)


def write_client(endpoint: str | None) -> BigQueryWriteAsyncClient:
    """A client on a new channel: Application Default Credentials in Google Cloud; with
    ``endpoint`` (the local emulator's gRPC ``host:port``), plain text to it. Made on the serving
    loop (gRPC asyncio)."""
    transport = BigQueryWriteGrpcAsyncIOTransport
    if endpoint is None:
        channel = transport.create_channel(
            "bigquerystorage.googleapis.com:443", options=list(CHANNEL_OPTIONS)
        )
    else:
        channel = grpc.aio.insecure_channel(endpoint, options=list(CHANNEL_OPTIONS))
    return BigQueryWriteAsyncClient(transport=transport(channel=channel))


class TableWriter:
    """Records (insertAll's shape) appended to one table's default stream. ``load_encoder``
    loads the table's schema (once, at the first append: BigQuery being down at start-up must not
    stop the worker from answering) and ``connect`` makes the append connection for it."""

    def __init__(
        self,
        load_encoder: Callable[[], Awaitable[RowEncoder]],
        connect: Callable[[RowEncoder], AppendConnection],
        timeout_seconds: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._load_encoder = load_encoder
        self._connect = connect
        self._timeout = timeout_seconds
        self._clock = clock
        self._sleep = sleep
        self._encoder: RowEncoder | None = None
        self._connection: AppendConnection | None = None

    async def _ready(self) -> tuple[RowEncoder, AppendConnection]:
        if self._encoder is None or self._connection is None:
            encoder = await self._load_encoder()
            self._encoder, self._connection = encoder, self._connect(encoder)
        return self._encoder, self._connection

    async def append(self, records: Sequence[Mapping[str, Any]]) -> dict[int, str]:
        """Append ``records``; per index of a record BigQuery refused for its values, why.

        Raises :class:`SinkUnavailable` when an append as a whole failed (nothing, or an unknown
        part, was written: the caller retries and the reader de-duplicates)."""
        if not records:
            return {}
        encoder, connection = await self._ready()
        # Off the event loop, as insertAll's request was: the loop keeps serving pushes.
        encoded, refused = await asyncio.to_thread(encode_records, encoder, records)
        sizes = [len(data) for _, data in encoded]
        for start, end in requests(sizes):
            if sizes[start] > MAX_INSERT_ALL_BYTES:  # alone, and still too large: refused alone
                message = f"{sizes[start]:,} bytes, over the {MAX_INSERT_ALL_BYTES:,}-byte limit"
                refused[encoded[start][0]] = message
                continue
            refused |= await self._append(connection, encoded[start:end])
        return refused

    async def _append(
        self, connection: AppendConnection, part: Sequence[tuple[int, bytes]]
    ) -> dict[int, str]:
        """One append; when BigQuery names bad rows (and so appended none), those are refused
        and the rest appended again, once."""
        response = await self._send(connection, [data for _, data in part])
        if not response.row_errors:
            return {}
        bad = refused_rows(response, len(part))
        rest = [data for i, (_, data) in enumerate(part) if i not in bad]
        if rest:
            again = await self._send(connection, rest)
            if again.row_errors:
                raise SinkUnavailable(
                    f"bigquery: {len(again.row_errors)} more row errors once the bad rows were out"
                )
        return {part[i][0]: message for i, message in bad.items()}

    async def _send(
        self, connection: AppendConnection, rows: Sequence[bytes]
    ) -> types.AppendRowsResponse:
        """An append answered without error, or one naming bad rows; transient failures are
        tried again (on a new connection) until ``timeout_seconds`` have passed."""
        deadline = self._clock() + self._timeout
        delay = FIRST_RETRY_DELAY
        while True:
            failure: SinkUnavailable
            try:
                response = await connection.append(rows, max(deadline - self._clock(), 0.001))
            except SinkUnavailable as exc:
                failure = exc
            else:
                code = response.error.code
                if code == 0 or response.row_errors:
                    return response
                failure = SinkUnavailable(
                    f"bigquery: append refused: {_status_name(code)}: {response.error.message}"
                )
                if code not in TRANSIENT_CODES:
                    raise failure
            if self._clock() + delay >= deadline:
                raise failure
            await self._sleep(delay)
            delay = min(delay * 2, MAX_RETRY_DELAY)


class StorageWriteSink:
    """The :class:`~hookpipe_worker.ports.RowLog` port on the raw events table, through the
    Storage Write API's default stream."""

    def __init__(self, writer: TableWriter) -> None:
        self._writer = writer

    async def insert(self, rows: Sequence[EventRow]) -> dict[str, RowRejected]:
        """Append ``rows``; return those BigQuery refused for their values. Raises
        :class:`SinkUnavailable` as :meth:`TableWriter.append` does (the batch is retried and the
        ``events`` view absorbs any duplicate)."""
        now = datetime.now(UTC)
        refused = await self._writer.append([bigquery_row(row, now) for row in rows])
        return {rows[i].event_id: RowRejected("bigquery", why) for i, why in refused.items()}


def encode_records(
    encoder: RowEncoder, records: Sequence[Mapping[str, Any]]
) -> tuple[list[tuple[int, bytes]], dict[int, str]]:
    """Each record encoded (with its index), or refused for a value the table cannot hold
    (never sent)."""
    encoded: list[tuple[int, bytes]] = []
    refused: dict[int, str] = {}
    for i, record in enumerate(records):
        try:
            encoded.append((i, encoder.encode(record)))
        except ValueError as exc:
            refused[i] = str(exc)
    return encoded, refused


def refused_rows(response: types.AppendRowsResponse, rows: int) -> dict[int, str]:
    """The rows (of ``rows`` appended) an append's ``row_errors`` name, by index, and why. An
    index outside the append cannot be mapped to a row: nothing of it can then be told it is
    committed."""
    bad: dict[int, str] = {}
    for error in response.row_errors:
        if not 0 <= error.index < rows:
            raise SinkUnavailable(f"bigquery: a row error for row {error.index} of {rows}")
        bad[error.index] = error.message[:500]
    return bad


def _status_name(code: int) -> str:
    try:
        return str(code_pb2.Code.Name(code))
    except ValueError:
        return str(code)


def table_encoder(
    client: bigquery.Client, table_id: str, timeout_seconds: float
) -> Callable[[], Awaitable[RowEncoder]]:
    """Loads ``table_id``'s schema from BigQuery and makes its :class:`RowEncoder`."""

    async def load() -> RowEncoder:
        try:
            table = await asyncio.to_thread(client.get_table, table_id, timeout=timeout_seconds)
        except BIGQUERY_ERRORS as exc:
            raise _unavailable(exc) from None
        return RowEncoder(table.schema)

    return load
