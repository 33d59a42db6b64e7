"""The two-sink commit (``hookpipe_worker.writer.BatchWriter``) with tiny fakes for its ports: an
event store with real transaction semantics (staged, then committed or rolled back) and a row log
that keeps every insert, duplicates included, as BigQuery's insertAll does. The same writer runs
against the real PostgreSQL and BigQuery emulator in tests/e2e/test_batch_retry.py and the fault
suite."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hookpipe.sources import SourceConfig, load_source_configs
from hookpipe_worker.errors import RowRejected, SinkInterrupted, SinkUnavailable, WorkerError
from hookpipe_worker.rows import EventRow
from hookpipe_worker.sinks.current_state import current_state_tables
from hookpipe_worker.writer import FIRST_RETRY_DELAY, BatchWriter

from tests.events import lead_row

SOURCES = load_source_configs(Path(__file__).resolve().parents[2] / "infra/sources.toml")
T0 = datetime(2026, 11, 30, 9, tzinfo=UTC)


def lead(event_id: str, *, lead_id: str = "L1") -> EventRow:
    return lead_row(event_id, lead_id=lead_id, at=T0)


@dataclass
class FakeStore:
    """The event store (Postgres): a transaction stages its writes; they become visible only when
    its block ends without an exception."""

    events: dict[str, EventRow] = field(default_factory=dict)
    current_state: dict[str, list[str]] = field(default_factory=dict)  # key -> event ids folded
    refuse: set[str] = field(default_factory=set)  # ids whose values the store refuses
    refuse_keys: set[str] = field(default_factory=set)  # keys whose state the store refuses
    interruptions: int = 0  # transactions that fail to start (a refused connection)
    failed_commits: int = 0  # transactions whose commit is lost with the connection
    broken: SinkUnavailable | None = None  # a failure waiting cannot fix
    transactions: int = 0
    sources: Mapping[str, SourceConfig] = field(default_factory=lambda: SOURCES)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[FakeTransaction]:
        self.transactions += 1
        if self.broken is not None:
            raise self.broken
        if self.interruptions:
            self.interruptions -= 1
            raise SinkInterrupted("postgres: OperationalError: connection refused")
        tx = FakeTransaction(self)
        yield tx  # an exception from the block propagates: nothing staged is kept
        if self.failed_commits:
            self.failed_commits -= 1
            raise SinkInterrupted("postgres: OperationalError: server closed the connection")
        self.events.update(tx.staged)
        for key, ids in tx.state.items():
            self.current_state.setdefault(key, []).extend(ids)


@dataclass
class FakeTransaction:
    store: FakeStore
    staged: dict[str, EventRow] = field(default_factory=dict)
    state: dict[str, list[str]] = field(default_factory=dict)

    async def insert(self, rows: Sequence[EventRow]) -> tuple[set[str], dict[str, WorkerError]]:
        failed: dict[str, WorkerError] = {
            r.event_id: RowRejected("postgres", "check constraint")
            for r in rows
            if r.event_id in self.store.refuse
        }
        new = [r for r in rows if r.event_id not in failed and r.event_id not in self.store.events]
        self.staged.update({r.event_id: r for r in new})
        return {r.event_id for r in new}, failed

    async def delete(self, event_ids: Sequence[str]) -> None:
        for event_id in event_ids:
            del self.staged[event_id]

    async def keep_first_received(self, rows: Sequence[EventRow]) -> None:
        for row in rows:
            stored = self.staged.get(row.event_id) or self.store.events[row.event_id]
            if (row.received_at, row.pubsub_message_id or "") < (
                stored.received_at,
                stored.pubsub_message_id or "",
            ):
                self.staged[row.event_id] = row

    async def upsert_current_state(self, rows: Sequence[EventRow]) -> dict[str, dict[str, str]]:
        """Per source with a current-state table (as the Postgres adapter builds them from the
        sources), each row's key moves unless the store refuses it."""
        refused: dict[str, dict[str, str]] = {}
        for source, config in self.store.sources.items():
            if config.current_state is None:
                continue
            refused[source] = {}
            for row in (r for r in rows if r.source == source):
                key = row.columns[config.current_state.key]
                if key in self.store.refuse_keys:
                    refused[source][row.event_id] = "numeric field overflow (SQLSTATE 22003)"
                else:
                    self.state.setdefault(key, []).append(row.event_id)
        return refused


@dataclass
class FakeRowLog:
    """The row log (BigQuery insertAll): every insert is kept, with its row id."""

    inserts: list[str] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)
    down: bool = False
    hung: asyncio.Event | None = None  # set: the insert never answers until the event is set

    async def insert(self, rows: Sequence[EventRow]) -> dict[str, RowRejected]:
        if self.down:
            raise SinkUnavailable("bigquery: ServiceUnavailable: 503")
        if self.hung is not None:
            await self.hung.wait()
        self.inserts.extend(r.event_id for r in rows if r.event_id not in self.refuse)
        return {
            r.event_id: RowRejected("bigquery", "payload: invalid")
            for r in rows
            if r.event_id in self.refuse
        }


@dataclass
class FakeClock:
    """Time that passes only when the writer sleeps."""

    now: float = 0.0
    slept: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def writer_for(
    store: FakeStore,
    row_log: FakeRowLog,
    *,
    retry_seconds: float = 10.0,
    deadline_seconds: float = 45.0,
) -> tuple[BatchWriter, FakeClock, list[tuple[int, str]]]:
    clock = FakeClock()
    retries: list[tuple[int, str]] = []
    writer = BatchWriter(
        store,
        row_log,
        retry_seconds=retry_seconds,
        deadline_seconds=deadline_seconds,
        on_retry=lambda attempt, exc, _: retries.append((attempt, type(exc).__name__)),
        clock=clock,
        sleep=clock.sleep,
    )
    return writer, clock, retries


def test_a_batch_lands_in_both_sinks_and_moves_current_state() -> None:
    store, row_log = FakeStore(), FakeRowLog()
    writer, _, _ = writer_for(store, row_log)
    rows = [lead("b", lead_id="L2"), lead("a")]

    assert asyncio.run(writer.commit(rows)) == {"a": None, "b": None}
    assert set(store.events) == set(row_log.inserts) == {"a", "b"}
    assert store.current_state == {"L1": ["a"], "L2": ["b"]}


def test_a_row_the_store_refuses_fails_alone_and_never_reaches_the_row_log() -> None:
    store, row_log = FakeStore(refuse={"bad"}), FakeRowLog()
    writer, _, _ = writer_for(store, row_log)

    result = asyncio.run(writer.commit([lead("good"), lead("bad", lead_id="L9")]))

    assert result["good"] is None
    assert isinstance(result["bad"], RowRejected)
    assert result["bad"].sink == "postgres"
    assert row_log.inserts == ["good"]
    assert set(store.events) == {"good"}
    assert "L9" not in store.current_state


def test_a_row_the_row_log_refuses_is_taken_back_from_the_store() -> None:
    store, row_log = FakeStore(), FakeRowLog(refuse={"bad"})
    writer, _, _ = writer_for(store, row_log)

    result = asyncio.run(writer.commit([lead("good"), lead("bad", lead_id="L9")]))

    assert result["good"] is None
    assert isinstance(result["bad"], RowRejected)
    assert result["bad"].sink == "bigquery"
    assert set(store.events) == {"good"}  # in neither sink: it is dead-lettered instead
    assert "L9" not in store.current_state


def test_a_row_already_in_the_store_is_not_taken_back_when_the_row_log_refuses_it() -> None:
    """A redelivered event the store already holds (from an earlier, committed batch) must not be
    deleted by this batch: only rows this transaction inserted are taken back."""
    store, row_log = FakeStore(), FakeRowLog()
    writer, _, _ = writer_for(store, row_log)
    asyncio.run(writer.commit([lead("a")]))
    row_log.refuse = {"a"}

    asyncio.run(writer.commit([lead("a")]))

    assert set(store.events) == {"a"}


def test_the_row_log_down_rolls_the_store_back_and_fails_the_batch_at_once() -> None:
    store, row_log = FakeStore(), FakeRowLog(down=True)
    writer, _, retries = writer_for(store, row_log)

    with pytest.raises(SinkUnavailable, match="bigquery"):
        asyncio.run(writer.commit([lead("a"), lead("b")]))

    assert store.events == {}
    assert store.current_state == {}
    assert retries == []  # Pub/Sub redelivers: waiting here would not help


def test_an_interrupted_store_is_tried_again_with_backoff() -> None:
    store, row_log = FakeStore(interruptions=2), FakeRowLog()
    writer, clock, retries = writer_for(store, row_log)

    assert asyncio.run(writer.commit([lead("a")])) == {"a": None}

    assert retries == [(1, "SinkInterrupted"), (2, "SinkInterrupted")]
    assert clock.slept == [FIRST_RETRY_DELAY, FIRST_RETRY_DELAY * 2]
    assert set(store.events) == {"a"}


def test_an_interruption_outlasting_the_budget_fails_the_batch() -> None:
    store, row_log = FakeStore(interruptions=1000), FakeRowLog()
    writer, clock, retries = writer_for(store, row_log, retry_seconds=3.0)

    with pytest.raises(SinkInterrupted):
        asyncio.run(writer.commit([lead("a")]))

    assert clock.slept == sorted(clock.slept)  # backing off, not hammering
    assert sum(clock.slept) <= 3.0  # no attempt starts after the budget
    assert len(retries) == len(clock.slept) == store.transactions - 1
    assert store.events == {}


def test_a_lost_commit_is_tried_again_and_the_row_log_absorbs_the_repeat() -> None:
    """The commit fails after the row log took the rows: the retry writes them to the row log a
    second time under the same row ids (BigQuery's dedup and the events view absorb it), and the
    store holds each once."""
    store, row_log = FakeStore(failed_commits=1), FakeRowLog()
    writer, _, retries = writer_for(store, row_log)

    assert asyncio.run(writer.commit([lead("a"), lead("b")])) == {"a": None, "b": None}

    assert retries == [(1, "SinkInterrupted")]
    assert sorted(row_log.inserts) == ["a", "a", "b", "b"]
    assert set(store.events) == {"a", "b"}
    assert store.current_state == {"L1": ["a", "b"]}  # folded once, by the commit that held


def test_a_failure_waiting_cannot_fix_is_not_retried() -> None:
    store = FakeStore(broken=SinkUnavailable("postgres: InsufficientPrivilege: permission denied"))
    writer, _, retries = writer_for(store, FakeRowLog())

    with pytest.raises(SinkUnavailable, match="InsufficientPrivilege"):
        asyncio.run(writer.commit([lead("a")]))
    assert retries == []
    assert store.transactions == 1


def test_a_redelivered_duplicate_in_one_batch_is_written_once() -> None:
    store, row_log = FakeStore(), FakeRowLog()
    writer, _, _ = writer_for(store, row_log)

    assert asyncio.run(writer.commit([lead("a"), lead("a"), lead("b")])) == {"a": None, "b": None}
    assert sorted(row_log.inserts) == ["a", "b"]


def test_only_sources_with_a_current_state_table_get_an_upsert() -> None:
    """The Postgres adapter's tables (the writer hands every committed row to the port)."""
    sources = {
        **SOURCES,
        "no-state": SOURCES["leadprosper"].model_copy(update={"current_state": None}),
    }
    assert [t.source for t in current_state_tables(sources)] == ["leadprosper"]


def test_a_key_whose_state_the_store_refuses_is_reported_and_fails_nothing() -> None:
    store, row_log = FakeStore(refuse_keys={"L2"}), FakeRowLog()
    reported: list[tuple[str, dict[str, str]]] = []
    writer = BatchWriter(
        store,
        row_log,
        retry_seconds=1.0,
        deadline_seconds=45.0,
        on_state_refused=lambda source, refused: reported.append((source, dict(refused))),
    )
    rows = [lead("a"), lead("b", lead_id="L2"), lead("c", lead_id="L3")]

    assert asyncio.run(writer.commit(rows)) == {"a": None, "b": None, "c": None}
    assert sorted(store.events) == sorted(row_log.inserts) == ["a", "b", "c"]
    assert store.current_state == {"L1": ["a"], "L3": ["c"]}
    assert reported == [("leadprosper", {"b": "numeric field overflow (SQLSTATE 22003)"})]


def test_a_commit_that_outlives_its_deadline_is_answered_unavailable_and_keeps_nothing() -> None:
    """BigQuery hung (or many slow requests): the batch gives up at its deadline, before Pub/Sub's
    ack deadline would redeliver the push, with nothing committed in the store."""

    async def scenario() -> None:
        store, row_log = FakeStore(), FakeRowLog(hung=asyncio.Event())
        writer, _, _ = writer_for(store, row_log, deadline_seconds=0.05)
        with pytest.raises(SinkUnavailable, match=r"did not finish within 0\.05 s"):
            await writer.commit([lead("a")])
        assert store.events == {}
        assert store.current_state == {}

    asyncio.run(scenario())


def test_the_commit_deadline_is_inside_the_push_ack_deadline_and_fits_its_retries() -> None:
    import json

    from hookpipe_worker.settings import WorkerSettings

    topology = json.loads(
        (Path(__file__).resolve().parents[2] / "infra/pubsub/subscriptions.json").read_text()
    )
    fields = WorkerSettings.model_fields
    deadline = fields["commit_deadline_seconds"].default
    assert deadline < topology["subscriptions"]["worker-push"]["ack_deadline_seconds"]
    assert deadline < topology["worker_request_timeout_seconds"]
    retries = fields["postgres_retry_seconds"].default + fields["pool_timeout_seconds"].default
    assert retries < deadline
    with pytest.raises(ValueError, match="must stay below HOOKPIPE_COMMIT_DEADLINE_SECONDS"):
        WorkerSettings(
            project_id="p",
            database_url="postgresql://u@h/db",
            sources_file=Path("infra/sources.toml"),
            commit_deadline_seconds=12,
        )
