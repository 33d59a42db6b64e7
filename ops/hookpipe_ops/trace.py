"""``hookpipe trace``: where is this event? One timeline per event, from the sender's request to
both sinks, and a verdict. Pure: the facts come in through the ports below (adapters in
:mod:`hookpipe_ops.trace_sources`), and what cannot be read is :data:`UNKNOWN`, never absent:
a missing source makes its part "unknown", never a wrong verdict.

What a key can be (:func:`lookup_for`): an event id; a lead key (LeadProsper's
``lp_request_uuid``: every status event of that lead); the value of a source's idempotency
header (``webhook-id``, ``X-GitHub-Delivery``: the event id ingest gives it is computed, not
looked up); or a Pub/Sub message id (the events topic's, or the dead-letter topic's).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal, Protocol

from hookpipe.event import event_id
from hookpipe.sources import SourceConfig


class Unknown:
    """A fact that could not be read (no log access, logs past retention, a store not given)."""

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Final = Unknown()


# -- what a key is --------------------------------------------------------------------------------
@dataclass(frozen=True)
class LeadKey:
    source: str
    field: str  # the payload field that holds it (lp_request_uuid)
    value: str


@dataclass(frozen=True)
class Lookup:
    """Everything a key may be, at once: one query per store answers all of it."""

    key: str | None  # None: a list of event ids only (``--recent``)
    event_ids: tuple[str, ...]  # the key itself, and the ids ingest gives it as a header value
    lead_keys: tuple[LeadKey, ...]
    since: datetime


def lookup_for(
    key: str,
    sources: Mapping[str, SourceConfig],
    since: datetime,
    *,
    source: str | None = None,
    lead_statuses: Mapping[str, Sequence[str]] | None = None,
) -> Lookup:
    """What ``key`` may be, for ``sources`` (or only ``source``). ``lead_statuses``: per source
    whose idempotency is (lead key, status), the statuses a lead's events can have, so that its
    events are found by id (in the spool, the logs) even when no sink holds them yet."""
    ids = [key]
    leads: list[LeadKey] = []
    for name, config in sorted(sources.items()):
        if source is not None and name != source:
            continue
        rule = config.idempotency
        if rule.header is not None:
            ids.append(event_id(name, f"header:{key}"))
        field = lead_field(config)
        if field is not None:
            leads.append(LeadKey(name, field, key))
            statuses = (lead_statuses or {}).get(name, ())
            if len(rule.fields) == 2 and rule.fields[0] == field:
                ids += [event_id(name, f"fields:{key}\x1f{status}") for status in statuses]
    return Lookup(key, tuple(dict.fromkeys(ids)), tuple(leads), since)


def lead_field(config: SourceConfig) -> str | None:
    """The payload field a source's current state is keyed on (its lead key), if it has one."""
    if config.current_state is None:
        return None
    column = config.columns.get(config.current_state.key)
    return column.field if column is not None else None


# -- the facts ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class StoredEvent:
    """An event's row in a sink."""

    event_id: str
    source: str
    event_type: str
    received_at: datetime
    pubsub_message_id: str | None
    problems: Sequence[Mapping[str, Any]]
    origin: str
    lead_key: str | None = None  # its lead key's value, when its source has one
    committed_at: datetime | None = None  # Postgres only: when the row was inserted


@dataclass(frozen=True)
class ArchivedLetter:
    dead_letter_id: str
    event_id: str | None
    error_class: str
    reason: str
    dead_lettered_at: datetime
    replayed_at: datetime | None
    replay_count: int
    original_message_id: str | None


@dataclass(frozen=True)
class SpooledObject:
    name: str
    created_at: datetime | None


@dataclass(frozen=True)
class LogLine:
    """One canonical request line (ingest's ``webhook``, the worker's ``push`` or
    ``dead_letter``) about an event; ``at`` is when the request came (its line's time less its
    latency)."""

    service: str
    event: str
    at: datetime
    event_id: str | None
    source: str | None
    status: int | None
    outcome: str
    reason: str | None
    trace: str | None = None
    message_id: str | None = None
    delivery_attempt: int | None = None
    latency_ms: float | None = None
    marked: bool = False


@dataclass(frozen=True)
class CurrentState:
    """The current-state row of the event's lead key."""

    table: str
    key: str
    status: str | None
    moved_by: str | None  # the event id of its newest version, when the row says


type Maybe[T] = T | Unknown


@dataclass
class Facts:
    """All that is known of one event id."""

    event_id: str
    postgres: StoredEvent | None = None
    bigquery: Maybe[StoredEvent | None] = UNKNOWN
    spool: Maybe[SpooledObject | None] = UNKNOWN
    archive: list[ArchivedLetter] = field(default_factory=list)
    logs: Maybe[list[LogLine]] = UNKNOWN
    current_state: CurrentState | None = None

    @property
    def source(self) -> str | None:
        for row in (self.postgres, self.bigquery):
            if isinstance(row, StoredEvent):
                return row.source
        if isinstance(self.logs, list):
            return next((line.source for line in self.logs if line.source), None)
        return None

    @property
    def first_seen(self) -> datetime | None:
        times = [s.at for s in timeline(self) if s.at is not None]
        return min(times, default=None)


# -- the ports ----------------------------------------------------------------------------------
class EventStore(Protocol):
    """Postgres: the events, the archive, current state."""

    def events(self, lookup: Lookup) -> list[StoredEvent]: ...

    def archived(self, lookup: Lookup, event_ids: Sequence[str]) -> list[ArchivedLetter]: ...

    def current_state(self, source: str, key: str) -> CurrentState | None: ...


class RowLog(Protocol):
    """BigQuery's ``events`` view."""

    def events(
        self, event_ids: Sequence[str], since: datetime
    ) -> Maybe[dict[str, StoredEvent]]: ...


class SpoolBucket(Protocol):
    def objects(self, event_ids: Sequence[str]) -> Maybe[dict[str, SpooledObject]]: ...


class RequestLog(Protocol):
    """The services' canonical request lines (local log files, or Cloud Logging). Each returns
    :data:`UNKNOWN` when it cannot be read (no access, a store that does not answer)."""

    def lines(
        self, event_ids: Sequence[str], message_ids: Sequence[str], since: datetime
    ) -> Maybe[list[LogLine]]: ...


@dataclass(frozen=True)
class Stores:
    """Where the facts come from; None: not given, its part is unknown."""

    postgres: EventStore
    bigquery: RowLog | None
    spool: SpoolBucket | None
    logs: RequestLog | None


def gather(lookup: Lookup, stores: Stores) -> list[Facts]:
    """Every event ``lookup`` matches, with all that is known of each, oldest first. An event
    matches when a store holds it, or a log line names it."""
    rows = stores.postgres.events(lookup)
    ids = list(dict.fromkeys([*lookup.event_ids, *(r.event_id for r in rows)]))
    message_ids = [lookup.key] if lookup.key else []
    logs: Maybe[list[LogLine]] = (
        stores.logs.lines(ids, message_ids, lookup.since) if stores.logs is not None else UNKNOWN
    )
    archived = stores.postgres.archived(lookup, ids)
    logged = [line.event_id for line in logs if line.event_id] if isinstance(logs, list) else []
    archived_ids = [a.event_id for a in archived if a.event_id]
    ids = list(dict.fromkeys([*ids, *logged, *archived_ids]))
    in_bigquery: Maybe[dict[str, StoredEvent]] = (
        stores.bigquery.events(ids, lookup.since) if stores.bigquery is not None else UNKNOWN
    )
    spooled: Maybe[dict[str, SpooledObject]] = (
        stores.spool.objects(ids) if stores.spool is not None else UNKNOWN
    )
    by_id = {r.event_id: r for r in rows}
    found: list[Facts] = []
    for eid in ids:
        facts = Facts(
            eid,
            postgres=by_id.get(eid),
            bigquery=in_bigquery.get(eid) if isinstance(in_bigquery, dict) else UNKNOWN,
            spool=spooled.get(eid) if isinstance(spooled, dict) else UNKNOWN,
            archive=[a for a in archived if a.event_id == eid],
            logs=[line for line in logs if line.event_id == eid]
            if isinstance(logs, list)
            else UNKNOWN,
        )
        if not _matched(facts):
            continue
        row = facts.postgres or (
            facts.bigquery if isinstance(facts.bigquery, StoredEvent) else None
        )
        if row is not None and row.lead_key is not None:
            facts.current_state = stores.postgres.current_state(row.source, row.lead_key)
        found.append(facts)
    return sorted(found, key=lambda f: (f.first_seen is None, f.first_seen, f.event_id))


def _matched(facts: Facts) -> bool:
    return bool(
        facts.postgres
        or isinstance(facts.bigquery, StoredEvent)
        or isinstance(facts.spool, SpooledObject)
        or facts.archive
        or (isinstance(facts.logs, list) and facts.logs)
    )


# Ingest's outcomes for a webhook it kept, as a trace says them.
INGEST_OUTCOMES = {"accepted": "published", "spooled": "spooled"}


# -- the timeline --------------------------------------------------------------------------------
type Stage = Literal[
    "received", "spooled", "drained", "delivered", "committed", "dead-lettered", "replayed"
]


@dataclass(frozen=True)
class Step:
    stage: Stage
    at: datetime | None
    what: str  # one line for a person; sender content in it is escaped when printed
    where: str  # the store or log that says so

    def as_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "at": self.at.isoformat() if self.at else None,
            "what": self.what,
            "where": self.where,
        }


def timeline(facts: Facts) -> list[Step]:
    """What happened to the event, in time order (steps without a time last)."""
    steps: list[Step] = []
    logs = facts.logs if isinstance(facts.logs, list) else []
    for line in logs:
        if line.service == "ingest":
            kept = INGEST_OUTCOMES.get(line.outcome, line.outcome)
            detail = f"answered {line.status}, {kept}"
            if line.reason:
                detail += f" ({line.reason})"
            if line.marked:
                detail += "; marked: its body could not be understood"
            if line.trace:
                detail += f"; trace {line.trace}"
            steps.append(Step("received", line.at, detail, "ingest's request log"))
            if line.outcome == "spooled":
                steps.append(Step("spooled", line.at, "Pub/Sub did not confirm in time", "ingest"))
        elif line.event == "dead_letter":
            steps.append(Step("dead-lettered", line.at, f"archive push: {line.outcome}", "worker"))
        else:
            attempt = f"attempt {line.delivery_attempt}" if line.delivery_attempt else "a push"
            latency = f" in {line.latency_ms:.0f} ms" if line.latency_ms is not None else ""
            reason = f": {line.reason}" if line.reason else ""
            steps.append(
                Step(
                    "delivered",
                    line.at,
                    f"{attempt}: {line.status} {line.outcome}{latency}{reason}",
                    "worker's request log",
                )
            )
    row = facts.postgres
    if row is not None and not any(s.stage == "received" for s in steps):
        steps.append(Step("received", row.received_at, f"via {row.origin}", "the events table"))
    if isinstance(facts.spool, SpooledObject):
        steps.append(
            Step(
                "spooled",
                facts.spool.created_at,
                f"still in the spool: {facts.spool.name}",
                "spool",
            )
        )
    elif any(s.stage == "spooled" for s in steps) and (row is not None or facts.spool is None):
        steps.append(Step("drained", None, "the object is gone from the spool", "spool"))
    for letter in facts.archive:
        steps.append(
            Step(
                "dead-lettered",
                letter.dead_lettered_at,
                f"{letter.error_class}: {letter.reason} (archived as {letter.dead_letter_id})",
                "the dead-letter archive",
            )
        )
        if letter.replayed_at is not None:
            steps.append(
                Step(
                    "replayed",
                    letter.replayed_at,
                    f"replayed {letter.replay_count} time(s)",
                    "the dead-letter archive",
                )
            )
    steps.append(_committed(facts))
    return sorted(steps, key=lambda s: (s.at is None, s.at.timestamp() if s.at else 0.0))


def _committed(facts: Facts) -> Step:
    pg, bq = facts.postgres, facts.bigquery
    parts = [
        f"Postgres {'has it' if pg else 'has not'}",
        "BigQuery unknown"
        if isinstance(bq, Unknown)
        else f"BigQuery {'has it' if bq else 'has not'}",
    ]
    row = pg or (bq if isinstance(bq, StoredEvent) else None)
    if row is not None:
        parts.append(f"origin {row.origin}")
        if row.problems:
            fields = ", ".join(str(p.get("field", "?")) for p in row.problems[:5])
            parts.append(f"marked: {len(row.problems)} problem(s) ({fields})")
    state = facts.current_state
    if state is not None:
        if state.moved_by == facts.event_id:
            parts.append(f"current state {state.table} moved to {state.status}")
        elif state.moved_by:
            parts.append(f"current state not moved: a newer event ({state.moved_by}) holds it")
    return Step("committed", pg.committed_at if pg else None, "; ".join(parts), "both sinks")


# -- the verdict ---------------------------------------------------------------------------------
type VerdictKind = Literal["landed", "one-sink", "in-flight", "dead-lettered", "unknown"]


@dataclass(frozen=True)
class Verdict:
    kind: VerdictKind
    line: str
    next: str | None  # the command to run next

    @property
    def landed(self) -> bool:
        return self.kind == "landed"


def verdict(facts: Facts) -> Verdict:
    pg, bq = facts.postgres, facts.bigquery
    eid = facts.event_id
    if pg is not None and isinstance(bq, StoredEvent):
        return Verdict("landed", "landed in both sinks", None)
    if pg is not None and isinstance(bq, Unknown):
        return Verdict(
            "unknown", "in Postgres; BigQuery was not read", "give --bigquery-endpoint or access"
        )
    if pg is not None:
        return Verdict(
            "one-sink",
            "in Postgres only (BigQuery's view has no row): the two sinks disagree",
            f'hookpipe trace {eid} --json, then docs/operations.md "The sinks disagree"',
        )
    if isinstance(bq, StoredEvent):
        return Verdict(
            "one-sink",
            f"in BigQuery only, since {bq.received_at:%Y-%m-%d %H:%M:%S} UTC: a commit that did not"
            " hold; Pub/Sub redelivers it until Postgres commits it",
            f"hookpipe trace {eid} again in a minute; if it stays, the worker's logs",
        )
    not_replayed = [a for a in facts.archive if a.replayed_at is None]
    if not_replayed:
        letter = not_replayed[-1]
        return Verdict(
            "dead-lettered",
            f"dead-lettered ({letter.error_class}) at {letter.dead_lettered_at:%Y-%m-%d %H:%M:%S}"
            " UTC, not replayed",
            f"hookpipe dlq replay --from-archive --message-id {letter.dead_letter_id}",
        )
    if isinstance(facts.spool, SpooledObject):
        return Verdict(
            "in-flight",
            "in flight: in the spool, waiting for the drainer",
            "hookpipe-spool drain (or wait for the drainer job's next run)",
        )
    if facts.archive:
        return Verdict(
            "in-flight",
            "in flight: replayed from the archive, not committed yet",
            f"hookpipe trace {eid} again in a minute",
        )
    logs = facts.logs if isinstance(facts.logs, list) else []
    pushes = [line for line in logs if line.service == "worker" and line.event == "push"]
    received = [line for line in logs if line.service == "ingest"]
    if pushes:
        last = pushes[-1]
        return Verdict(
            "in-flight",
            f"in flight: published; the worker's last attempt answered {last.status}"
            + (f" ({last.reason})" if last.reason else ""),
            "hookpipe subscriptions show hookpipe-worker-push; the worker's logs",
        )
    if received and received[-1].outcome in INGEST_OUTCOMES:
        kept = INGEST_OUTCOMES[received[-1].outcome]
        return Verdict(
            "in-flight",
            f"in flight: {kept} by ingest; no push to the worker has finished yet",
            f"hookpipe trace {eid} again in a minute; the worker's logs if it stays",
        )
    if received:
        return Verdict(
            "in-flight" if received[-1].status and received[-1].status >= 500 else "unknown",
            f"ingest answered {received[-1].status} {received[-1].outcome}: not kept",
            "hookpipe reconcile leadprosper --since 7d (LeadProsper does not retry)",
        )
    return Verdict("unknown", "where it is cannot be said from what could be read", None)


def lookup_of_ids(event_ids: Sequence[str], since: datetime) -> Lookup:
    """A look-up of these events only (``--recent``)."""
    return Lookup(None, tuple(dict.fromkeys(event_ids)), (), since)


def next_for_nothing(lookup: Lookup) -> str:
    """What to run when nothing matched ``lookup``."""
    if lookup.lead_keys:
        return (
            "if the sender recorded it, it never reached hookpipe: "
            f"hookpipe reconcile {lookup.lead_keys[0].source} --since 7d"
        )
    return "check the key, or widen --since"


# -- output ----------------------------------------------------------------------------------------
def as_dict(facts: Facts) -> dict[str, Any]:
    """One event for ``--json`` (docs/operations.md names the fields)."""
    found = verdict(facts)
    pg, bq = facts.postgres, facts.bigquery
    return {
        "event_id": facts.event_id,
        "source": facts.source,
        "verdict": found.kind,
        "verdict_line": found.line,
        "next": found.next,
        "postgres": _row_dict(pg),
        "bigquery": "unknown" if isinstance(bq, Unknown) else _row_dict(bq),
        "spool": "unknown"
        if isinstance(facts.spool, Unknown)
        else (facts.spool.name if facts.spool else None),
        "dead_letters": [
            {
                "dead_letter_id": a.dead_letter_id,
                "error_class": a.error_class,
                "reason": a.reason,
                "dead_lettered_at": a.dead_lettered_at.isoformat(),
                "replayed_at": a.replayed_at.isoformat() if a.replayed_at else None,
                "replay_count": a.replay_count,
            }
            for a in facts.archive
        ],
        "current_state": None
        if facts.current_state is None
        else {
            "table": facts.current_state.table,
            "status": facts.current_state.status,
            "moved_by": facts.current_state.moved_by,
            "moved_by_this_event": facts.current_state.moved_by == facts.event_id,
        },
        "logs": "unknown" if isinstance(facts.logs, Unknown) else len(facts.logs),
        "timeline": [s.as_dict() for s in timeline(facts)],
    }


def _row_dict(row: StoredEvent | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {
        "received_at": row.received_at.isoformat(),
        "event_type": row.event_type,
        "origin": row.origin,
        "pubsub_message_id": row.pubsub_message_id,
        "problems": list(row.problems),
    }


def exit_code(found: Iterable[Facts]) -> int:
    """0 every matched event landed in both sinks, 1 one has not, 2 nothing matched."""
    verdicts = [verdict(f) for f in found]
    if not verdicts:
        return 2
    return 0 if all(v.landed for v in verdicts) else 1
