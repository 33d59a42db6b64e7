"""The worker's wiring: its adapters, the group-commit batcher and the use case, built together.

``create_app`` (``hookpipe_worker.app``) calls :func:`default_adapters` and :func:`start` once per
process. They run inside the serving process, on its event loop, on the first request: the server
imports the app before it forks, and neither gRPC channels nor a connection pool may cross a fork.
Tests pass their own :class:`Adapters` (tiny fakes, or the real local services).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

from google.cloud import bigquery
from hookpipe.batching import BatchPolicy, MicroBatcher
from hookpipe.bigquery import bigquery_client
from hookpipe.errors import error_class
from hookpipe.logging import log_event
from hookpipe.problems import clip
from hookpipe.sources import SourceConfig

from hookpipe_worker.errors import Overloaded, ShuttingDown, WorkerError
from hookpipe_worker.ports import Archive, DeadLetterTopic, RowLog, RowWriter
from hookpipe_worker.process import Processor
from hookpipe_worker.rows import EventRow
from hookpipe_worker.settings import WorkerSettings
from hookpipe_worker.sinks.archive import (
    DeadLetterArchive,
    WriteRow,
    insert_all_rows,
    storage_write_rows,
)
from hookpipe_worker.sinks.bigquery import BigQuerySink
from hookpipe_worker.sinks.dead_letter_topic import PubSubDeadLetters
from hookpipe_worker.sinks.postgres import PostgresSink, create_pool
from hookpipe_worker.sinks.storage_write import (
    AppendStream,
    StorageWriteSink,
    TableWriter,
    table_encoder,
    write_client,
)
from hookpipe_worker.writer import BatchWriter

logger = logging.getLogger("hookpipe.worker")
# A log line names at most this many event ids: Cloud Logging drops an entry over 256 KB.
MAX_LOGGED_IDS = 20


@dataclass
class Adapters:
    """The worker's I/O, created once per process."""

    writer: RowWriter
    dead_letters: DeadLetterTopic
    open: Callable[[], Awaitable[None]]
    ready: Callable[[], Awaitable[bool]]
    archive: Archive


@dataclass
class Runtime:
    """What the worker serves with, once started."""

    adapters: Adapters
    batcher: MicroBatcher[EventRow, None]
    processor: Processor


async def start(
    settings: WorkerSettings, sources: Mapping[str, SourceConfig], adapters: Adapters
) -> Runtime:
    """Open ``adapters`` and build the batcher and the use case on them (on the running loop)."""
    await adapters.open()
    batcher = group_commit(settings, adapters.writer)
    processor = Processor(
        sources,
        commit=batcher.submit,
        dead_letters=adapters.dead_letters,
        archive=adapters.archive,
    )
    return Runtime(adapters, batcher, processor)


def group_commit(settings: WorkerSettings, writer: RowWriter) -> MicroBatcher[EventRow, None]:
    """Concurrent pushes' rows, coalesced into one ``writer.commit`` per batch."""

    async def commit(rows: Sequence[EventRow]) -> list[WorkerError | None]:
        results = await writer.commit(rows)
        return [results[row.event_id] for row in rows]

    def log_batch(rows: int, seconds: float) -> None:
        log_event(
            logger,
            logging.INFO,
            f"batch of {rows} committed in {seconds * 1000:.1f} ms",
            project_id=settings.project_id,
            fields={"event": "batch", "batch_rows": rows, "batch_ms": round(seconds * 1000, 3)},
        )

    policy = BatchPolicy(
        max_items=settings.batch_max_rows,
        max_bytes=settings.batch_max_bytes,
        max_delay=settings.batch_max_delay_ms / 1000,
        recent_window=settings.batch_recent_window_ms / 1000,
        max_concurrent=settings.batch_max_concurrent,
        max_queued=settings.batch_max_queued,
    )
    return MicroBatcher(
        commit,
        policy,
        size=lambda row: row.size,
        overloaded=lambda queued: Overloaded(f"{queued} rows already queued"),
        closed=lambda: ShuttingDown("instance is shutting down"),
        on_batch=log_batch,
    )


def table_writer(settings: WorkerSettings, client: bigquery.Client, table_id: str) -> TableWriter:
    """Appends to ``table_id``'s default stream, on a connection of its own."""
    return TableWriter(
        table_encoder(client, table_id, settings.bigquery_timeout_seconds),
        lambda encoder: AppendStream(
            partial(write_client, settings.bigquery_storage_endpoint), table_id, encoder.schema
        ),
        settings.bigquery_timeout_seconds,
    )


def default_adapters(settings: WorkerSettings, sources: Mapping[str, SourceConfig]) -> Adapters:
    """The production adapters: a Postgres pool, a BigQuery client, the dead-letter publisher."""
    pool = create_pool(
        settings.database_url.get_secret_value(),
        min_size=settings.pool_min_size,
        max_size=settings.pool_max_size,
        timeout=settings.pool_timeout_seconds,
        sslmode=settings.database_sslmode,
        sslrootcert=str(settings.database_sslrootcert) if settings.database_sslrootcert else None,
    )
    bq_client = bigquery_client(settings.project_id, settings.bigquery_endpoint)
    postgres = PostgresSink(pool, sources)
    bq: RowLog
    write_archive_row: WriteRow
    if settings.bigquery_write_api == "storage_write":
        bq = StorageWriteSink(table_writer(settings, bq_client, settings.bigquery_table_id))
        write_archive_row = storage_write_rows(
            table_writer(settings, bq_client, settings.bigquery_dead_letters_table_id)
        )
    else:
        timeout = settings.bigquery_timeout_seconds
        bq = BigQuerySink(bq_client, settings.bigquery_table_id, timeout)
        write_archive_row = insert_all_rows(
            bq_client, settings.bigquery_dead_letters_table_id, timeout
        )
    dead_letters = PubSubDeadLetters(
        settings.project_id,
        settings.dead_letter_topic,
        settings.revision,
        settings.dead_letter_timeout_seconds,
    )

    async def open_() -> None:
        # Does not wait for min_size connections: a Postgres outage must not stop the worker
        # from answering (503) and dead-lettering.
        await pool.open(wait=False)

    def on_retry(attempt: int, exc: BaseException, delay: float) -> None:
        log_event(
            logger,
            logging.WARNING,
            f"batch attempt {attempt} failed, trying again in {delay:g} s",
            project_id=settings.project_id,
            fields={
                "event": "batch_retry",
                "attempt": attempt,
                "reason": f"{error_class(exc)}: {exc}",
                "retry_in_seconds": delay,
            },
        )

    def on_state_refused(source: str, refused: Mapping[str, str]) -> None:
        # The events are committed in both sinks; only the derived current state did not move.
        log_event(
            logger,
            logging.ERROR,
            f"current state of {len(refused)} {source} event(s) refused by Postgres",
            project_id=settings.project_id,
            fields={
                "event": "current_state_refused",
                "source": source,
                "event_ids": sorted(refused)[:MAX_LOGGED_IDS],
                "reason": clip(next(iter(refused.values()))),
            },
        )

    writer = BatchWriter(
        postgres,
        bq,
        retry_seconds=settings.postgres_retry_seconds,
        deadline_seconds=settings.commit_deadline_seconds,
        on_retry=on_retry,
        on_state_refused=on_state_refused,
    )
    archive = DeadLetterArchive(pool, write_archive_row)
    return Adapters(writer, dead_letters, open_, postgres.ready, archive)
