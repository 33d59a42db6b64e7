"""Where ``hookpipe trace`` reads its facts: the adapters behind the ports of
:mod:`hookpipe_ops.trace`. Postgres (events, the dead-letter archive, current state: every look-up
by an index, infra/supabase/migrations/20261203000500_trace_lookups.sql), BigQuery's ``events``
view, the spool bucket, and the services' request lines: the local stack's log files under
``make run``, or Cloud Logging (``entries.list`` filtered on the event ids) on Google Cloud.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from google.api_core.exceptions import GoogleAPIError
from google.auth.credentials import AnonymousCredentials
from google.auth.exceptions import GoogleAuthError
from google.cloud import bigquery, storage
from hookpipe.deadletters import parse_timestamp
from hookpipe.sources import SourceConfig
from hookpipe.spool import PREFIX, event_id_of, object_name
from psycopg import sql
from requests.exceptions import RequestException

from hookpipe_ops.errors import UsageError
from hookpipe_ops.trace import (
    UNKNOWN,
    ArchivedLetter,
    CurrentState,
    LogLine,
    Lookup,
    SpooledObject,
    StoredEvent,
    Unknown,
    lead_field,
)

DATASET_ID = re.compile(r"[a-z][a-z0-9:.-]*\.\w+")  # project (may be domain:name).dataset
VIEW_COLUMNS = ("event_id, source, event_type, received_at, pubsub_message_id, "
                "TO_JSON_STRING(problems) AS problems, origin")  # fmt: skip
# A store that does not answer in this time (paused, partitioned) is unknown: a trace answers.
STORE_TIMEOUT_SECONDS = 5.0
REQUEST_EVENTS = {"webhook": "ingest", "push": "worker", "dead_letter": "worker"}


class PostgresTrace:
    """The events table, the archive and current state, read by index only."""

    def __init__(self, conn: Any, sources: Mapping[str, SourceConfig]) -> None:
        self._conn = conn
        self._sources = sources

    def _lead_fields(self) -> dict[str, str]:
        fields = {name: lead_field(config) for name, config in sorted(self._sources.items())}
        return {name: field for name, field in fields.items() if field is not None}

    def events(self, lookup: Lookup) -> list[StoredEvent]:
        leads = self._lead_fields()
        lead_key = (
            sql.SQL("CASE source {whens} END").format(
                whens=sql.SQL(" ").join(
                    sql.SQL("WHEN {s} THEN payload ->> {f}").format(
                        s=sql.Literal(s), f=sql.Literal(f)
                    )
                    for s, f in leads.items()
                )
            )
            if leads
            else sql.SQL("NULL")
        )
        # Each alternative is an index's own predicate, so the planner ORs index scans.
        matches: list[sql.Composable] = [sql.SQL("event_id = ANY(%(ids)s)")]
        if lookup.key is not None:
            matches.append(sql.SQL("pubsub_message_id = %(key)s"))
        for lead in lookup.lead_keys:
            matches.append(
                sql.SQL("(source = {s} AND payload ->> {f} = %(key)s)").format(
                    s=sql.Literal(lead.source), f=sql.Literal(lead.field)
                )
            )
        query = sql.SQL(
            "SELECT event_id, source, event_type, received_at, pubsub_message_id, problems, "
            "origin, inserted_at, {lead_key} FROM hookpipe.events WHERE {matches} "
            "ORDER BY received_at, event_id LIMIT 200"
        ).format(lead_key=lead_key, matches=sql.SQL(" OR ").join(matches))
        rows = self._conn.execute(query, {"ids": list(lookup.event_ids), "key": lookup.key})
        return [
            StoredEvent(
                event_id=r[0],
                source=r[1],
                event_type=r[2],
                received_at=r[3],
                pubsub_message_id=r[4],
                problems=list(r[5] or []),
                origin=r[6],
                committed_at=r[7],
                lead_key=r[8],
            )
            for r in rows.fetchall()
        ]

    def archived(self, lookup: Lookup, event_ids: Sequence[str]) -> list[ArchivedLetter]:
        rows = self._conn.execute(
            "SELECT dead_letter_id, event_id, error_class, reason, dead_lettered_at, replayed_at, "
            "replay_count, original_message_id FROM hookpipe.dead_letters "
            "WHERE event_id = ANY(%(ids)s) OR (%(key)s::text IS NOT NULL AND "
            "(dead_letter_id = %(key)s OR original_message_id = %(key)s)) "
            "ORDER BY dead_lettered_at LIMIT 200",
            {"ids": list(event_ids), "key": lookup.key},
        ).fetchall()
        return [ArchivedLetter(*r) for r in rows]

    def current_state(self, source: str, key: str) -> CurrentState | None:
        config = self._sources.get(source)
        if config is None or config.current_state is None:
            return None
        spec = config.current_state
        first = spec.columns[0] if spec.columns else spec.key
        row = self._conn.execute(
            sql.SQL("SELECT {c}, event_id FROM {t} WHERE {k} = %s").format(
                c=sql.Identifier(first),
                t=sql.Identifier(*spec.table.split(".")),
                k=sql.Identifier(spec.key),
            ),
            (key,),
        ).fetchone()
        if row is None:
            return CurrentState(spec.table, key, None, None)
        return CurrentState(spec.table, key, None if row[0] is None else str(row[0]), row[1])


RECENT = {
    "events": "SELECT event_id FROM hookpipe.events WHERE ({source}) "
    "ORDER BY received_at DESC LIMIT %(limit)s",
    "problems": "SELECT event_id FROM hookpipe.events WHERE ({source}) AND problems IS NOT NULL "
    "ORDER BY received_at DESC LIMIT %(limit)s",
    "dead-lettered": "SELECT coalesce(event_id, dead_letter_id) FROM hookpipe.dead_letters "
    "WHERE ({source}) ORDER BY dead_lettered_at DESC LIMIT %(limit)s",
}


def recent_event_ids(conn: Any, kind: str, source: str | None, limit: int) -> list[str]:
    """The event ids of the last ``limit`` events of a kind (``RECENT``), newest first."""
    condition = "source = %(source)s" if source else "true"
    query = RECENT[kind].format(source=condition)
    rows = conn.execute(query, {"source": source, "limit": limit}).fetchall()
    return [str(r[0]) for r in rows]


class BigQueryTrace:
    """BigQuery's ``events`` view (the de-duplicated one readers use)."""

    def __init__(self, client: bigquery.Client, dataset: str) -> None:
        if not DATASET_ID.fullmatch(dataset):
            raise UsageError(f"{dataset!r} is not a BigQuery dataset id (project.dataset)")
        self._client = client
        self._view = f"{dataset}.events"
        # The library retries for minutes by default; a trace says "unknown" instead.
        self._retry = bigquery.DEFAULT_RETRY.with_deadline(STORE_TIMEOUT_SECONDS)

    def events(self, event_ids: Sequence[str], since: datetime) -> dict[str, StoredEvent] | Unknown:
        if not event_ids:
            return {}
        try:
            return self._events(event_ids)
        except (GoogleAPIError, RequestException, OSError, TimeoutError):
            return UNKNOWN  # not answering (paused, down, no access): unknown, never "absent"

    def _events(self, event_ids: Sequence[str]) -> dict[str, StoredEvent]:
        # The view's id matched DATASET_ID; the ids are a parameter.
        query = f"SELECT {VIEW_COLUMNS} FROM `{self._view}` WHERE event_id IN UNNEST(@ids)"  # noqa: S608
        job = self._client.query(
            query,
            job_config=bigquery.QueryJobConfig(
                query_parameters=[bigquery.ArrayQueryParameter("ids", "STRING", list(event_ids))]
            ),
            timeout=STORE_TIMEOUT_SECONDS,
            retry=self._retry,
            job_retry=None,
        )
        found: dict[str, StoredEvent] = {}
        for row in job.result(timeout=STORE_TIMEOUT_SECONDS, retry=self._retry):
            found[row["event_id"]] = StoredEvent(
                event_id=row["event_id"],
                source=row["source"],
                event_type=row["event_type"],
                received_at=row["received_at"],
                pubsub_message_id=row["pubsub_message_id"],
                problems=_problems(row["problems"]),
                origin=row["origin"] or "webhook",
            )
        return found


def _problems(value: Any) -> list[Mapping[str, Any]]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return []
    if isinstance(value, str):  # a JSON column holds the text of its JSON
        return _problems(value)
    return [p for p in value if isinstance(p, dict)] if isinstance(value, list) else []


class SpoolTrace:
    """The spool bucket: whether an event's object is still there (not drained yet)."""

    def __init__(self, bucket: str, project: str, emulator_host: str | None = None) -> None:
        if emulator_host:
            client = storage.Client(
                project=project,
                credentials=AnonymousCredentials(),
                client_options={"api_endpoint": emulator_host},
            )
        else:
            client = storage.Client(project=project)
        self._bucket = client.bucket(bucket)

    def recent(self, limit: int) -> list[str]:
        """Event ids of objects still in the spool (at most ``limit``)."""
        blobs = self._bucket.list_blobs(prefix=PREFIX, max_results=limit)
        return [event_id_of(blob.name) for blob in blobs]

    def objects(self, event_ids: Sequence[str]) -> dict[str, SpooledObject] | Unknown:
        found: dict[str, SpooledObject] = {}
        try:
            for eid in event_ids:
                blob = self._bucket.get_blob(object_name(eid), timeout=STORE_TIMEOUT_SECONDS)
                if blob is not None:
                    found[eid] = SpooledObject(blob.name, blob.time_created)
        except (GoogleAPIError, RequestException, OSError):
            return UNKNOWN
        return found


def log_line(entry: Mapping[str, Any]) -> LogLine | None:
    """A canonical request line (one JSON object, Cloud Logging's format) as a trace reads it;
    None for any other line."""
    service = REQUEST_EVENTS.get(str(entry.get("event")))
    if service is None:
        return None
    try:
        at = parse_timestamp(str(entry.get("time") or entry.get("timestamp") or ""))
    except ValueError:
        return None
    raw_http = entry.get("httpRequest")
    http: Mapping[str, Any] = raw_http if isinstance(raw_http, dict) else {}
    trace = entry.get("logging.googleapis.com/trace")
    attempt = entry.get("delivery_attempt")
    latency = entry.get("latency_ms")
    if isinstance(latency, int | float) and latency >= 0:
        # A request's line is written as it is answered; the timeline places it when it came.
        at -= timedelta(milliseconds=latency)
    return LogLine(
        service=service,
        event=str(entry["event"]),
        at=at.astimezone(UTC),
        event_id=_text(entry.get("event_id")),
        source=_text(entry.get("source")),
        status=http.get("status") if isinstance(http.get("status"), int) else None,
        outcome=str(entry.get("outcome") or ""),
        reason=_text(entry.get("reason")),
        trace=str(trace).rsplit("/", 1)[-1] if trace else None,
        message_id=_text(entry.get("message_id")),
        delivery_attempt=attempt if isinstance(attempt, int) else None,
        latency_ms=float(latency) if isinstance(latency, int | float) else None,
        marked=entry.get("marked") is True,
    )


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


class LogFiles:
    """The local stack's log files (``make run``, the test stack): one JSON line per record."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory

    def _entries(self) -> Iterator[Mapping[str, Any]]:
        for path in sorted(self._directory.glob("*.log")):
            with path.open(encoding="utf-8", errors="replace") as lines:
                for line in lines:
                    if not line.startswith("{") or '"event"' not in line:
                        continue
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(entry, dict):
                        yield entry

    def lines(
        self, event_ids: Sequence[str], message_ids: Sequence[str], since: datetime
    ) -> list[LogLine]:
        ids, messages = set(event_ids), set(message_ids)
        found = []
        for entry in self._entries():
            if entry.get("event_id") not in ids and entry.get("message_id") not in messages:
                continue
            line = log_line(entry)
            if line is not None and line.at >= since:
                found.append(line)
        return sorted(found, key=lambda line: line.at)


def cloud_logging_filter(
    event_ids: Sequence[str], message_ids: Sequence[str], since: datetime
) -> str:
    """The ``entries.list`` filter for the request lines naming these ids (quoted as the logging
    query language wants: a key's quotes and backslashes escaped)."""

    def quoted(value: str) -> str:
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

    wanted = [f"jsonPayload.event_id={quoted(i)}" for i in event_ids]
    wanted += [f"jsonPayload.message_id={quoted(m)}" for m in message_ids]
    return (
        f'timestamp>="{since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}" '
        f'AND resource.type=("cloud_run_revision" OR "cloud_run_job") AND ({" OR ".join(wanted)})'
    )


class CloudLogging:
    """The services' request lines in Cloud Logging (needs roles/logging.viewer)."""

    def __init__(self, project: str) -> None:
        from google.cloud import logging as cloud_logging  # only on Google Cloud

        self._client = cloud_logging.Client(project=project)
        self._project = project

    def lines(
        self, event_ids: Sequence[str], message_ids: Sequence[str], since: datetime
    ) -> list[LogLine] | Unknown:
        try:
            return self._lines(event_ids, message_ids, since)
        except (GoogleAPIError, GoogleAuthError, RequestException, OSError):
            return UNKNOWN  # no roles/logging.viewer, no credentials: unknown

    def _lines(
        self, event_ids: Sequence[str], message_ids: Sequence[str], since: datetime
    ) -> list[LogLine]:
        found = []
        entries = self._client.list_entries(
            resource_names=[f"projects/{self._project}"],
            filter_=cloud_logging_filter(event_ids, message_ids, since),
            order_by="timestamp asc",
            max_results=500,
        )
        for entry in entries:
            payload = entry.payload if isinstance(entry.payload, dict) else {}
            line = log_line({**payload, "time": entry.timestamp.isoformat()})
            if line is not None:
                found.append(line)
        return found
