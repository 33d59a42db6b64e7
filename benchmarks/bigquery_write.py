"""`make bench-bigquery`: insertAll against the Storage Write API's default stream, on the
local-bigquery emulator, same run, same rows (~1.5 KB each), 5 calls per batch size; then insertAll
calls of 20 rows with 1, 2 and 4 in flight (how the emulator serves concurrent calls).
Prints a Markdown table for docs/benchmarks.md (docs/delivery.md says what it decided)."""

from __future__ import annotations

import json
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import grpc
from google.cloud import bigquery
from google.cloud.bigquery_storage_v1 import BigQueryWriteClient, types
from google.cloud.bigquery_storage_v1.services.big_query_write.transports import (
    BigQueryWriteGrpcTransport,
)
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from hookpipe.bigquery import bigquery_client
from hookpipe_devstack.emulators import BigQueryEmulator

Row = tuple[str, str, int]


def main() -> int:
    emulator = BigQueryEmulator(Path(tempfile.mkdtemp(prefix="hookpipe-bench-bq-")))
    emulator.start()
    try:
        client = bigquery_client("bench", emulator.url)
        client.create_dataset("d", exists_ok=True)
        schema = [
            bigquery.SchemaField("event_id", "STRING"),
            bigquery.SchemaField("payload", "STRING"),
            bigquery.SchemaField("received_at", "TIMESTAMP"),
        ]
        for table in ("insert_all", "storage_write", "in_flight"):
            client.create_table(bigquery.Table(f"bench.d.{table}", schema=schema), exists_ok=True)

        file = descriptor_pb2.FileDescriptorProto(name="row.proto", package="bench")
        message = file.message_type.add(name="Row")
        for number, (name, kind) in enumerate(
            [("event_id", 9), ("payload", 9), ("received_at", 3)], 1
        ):  # string, int64
            message.field.add(name=name, number=number, type=kind, label=1)
        pool = descriptor_pool.DescriptorPool()
        pool.Add(file)
        descriptor = pool.FindMessageTypeByName("bench.Row")
        proto_row = message_factory.GetMessageClass(descriptor)
        proto_schema = descriptor_pb2.DescriptorProto()
        descriptor.CopyToProto(proto_schema)
        writer = BigQueryWriteClient(
            transport=BigQueryWriteGrpcTransport(
                channel=grpc.insecure_channel(f"127.0.0.1:{emulator.grpc_port}")
            )
        )
        payload = json.dumps({"lp_lead_id": "L", "notes": "x" * 1450})

        def rows(n: int) -> list[Row]:
            return [(str(uuid.uuid4()), payload, int(time.time() * 1e6)) for _ in range(n)]

        def insert_all(batch: list[Row]) -> None:
            errors = client.insert_rows_json(
                "bench.d.insert_all",
                [
                    {
                        "event_id": e,
                        "payload": p,
                        "received_at": datetime.fromtimestamp(t / 1e6, UTC).isoformat(),
                    }
                    for e, p, t in batch
                ],
                row_ids=[e for e, _, _ in batch],
            )
            assert not errors, errors

        def storage_write(batch: list[Row]) -> None:
            data = types.AppendRowsRequest.ProtoData(
                writer_schema=types.ProtoSchema(proto_descriptor=proto_schema),
                rows=types.ProtoRows(
                    serialized_rows=[
                        proto_row(event_id=e, payload=p, received_at=t).SerializeToString()
                        for e, p, t in batch
                    ]
                ),
            )
            request = types.AppendRowsRequest(
                write_stream="projects/bench/datasets/d/tables/storage_write/streams/_default",
                proto_rows=data,
            )
            for response in writer.append_rows(iter([request])):
                assert not response.error.code, response.error
                break

        variants: list[tuple[str, Callable[[list[Row]], None]]] = [
            ("insertAll (`insert_rows_json`, row ids)", insert_all),
            ("Storage Write API, default stream", storage_write),
        ]
        print(f"\n`make bench-bigquery` — {time.strftime('%Y-%m-%d')}, local-bigquery 0.3.2\n")
        print("| rows per call | " + " | ".join(name for name, _ in variants) + " |")
        print("| ---: | " + " | ".join("---:" for _ in variants) + " |")
        for n in (1, 20, 100, 500):
            cells = []
            for _, write in variants:
                write(rows(n))  # warm-up
                started = time.perf_counter()
                for _ in range(5):
                    write(rows(n))
                cells.append(f"{(time.perf_counter() - started) / 5 * 1000:.0f} ms")
            print(f"| {n} | " + " | ".join(cells) + " |")
        # Concurrent calls: does the emulator serve them side by side or one at a time?
        print("\n| insertAll calls in flight | rows per call | ms per call | rows/s |")
        print("| ---: | ---: | ---: | ---: |")
        calls = 12
        for threads in (1, 2, 4):

            def call(_: int) -> None:
                batch = rows(20)
                errors = client.insert_rows_json(
                    "bench.d.in_flight",
                    [{"event_id": e, "payload": p, "received_at": datetime.fromtimestamp(t / 1e6, UTC).isoformat()}
                     for e, p, t in batch],
                    row_ids=[e for e, _, _ in batch],
                )  # fmt: skip
                assert not errors, errors

            call(0)  # warm-up
            started = time.perf_counter()
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(call, range(calls)))
            elapsed = time.perf_counter() - started
            print(f"| {threads} | 20 | {elapsed / calls * threads * 1000:.0f} | "
                  f"{calls * 20 / elapsed:,.0f} |")  # fmt: skip
        counts = [
            next(iter(client.query(f"SELECT COUNT(*) FROM bench.d.{t}").result()))[0]
            for t in ("insert_all", "storage_write")
        ]
        assert counts[0] == counts[1] == 6 * (1 + 20 + 100 + 500), counts
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
