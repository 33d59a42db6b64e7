"""``hookpipe trace``: where is this event? One timeline per matching event, from the sender's
request to both sinks, and a verdict (:mod:`hookpipe_ops.trace`).

Exit codes: 0 every matched event landed in both sinks · 1 one has not · 2 nothing matched
(``--recent`` with nothing to list: 0, an empty list is an answer).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import click
from hookpipe.bigquery import bigquery_client
from hookpipe.sources import load_source_configs
from rich.table import Table

from hookpipe_ops.cli.common import (
    DATABASE_URL_ENV,
    PROJECT_ENV,
    err,
    out,
    safe,
    sources_file_option,
)
from hookpipe_ops.database import connect
from hookpipe_ops.deadletters import parse_time
from hookpipe_ops.errors import UsageError
from hookpipe_ops.leadprosper import TRIGGER_STATUSES
from hookpipe_ops.trace import (
    Facts,
    Lookup,
    RequestLog,
    Stores,
    as_dict,
    exit_code,
    gather,
    lookup_for,
    lookup_of_ids,
    next_for_nothing,
    timeline,
    verdict,
)
from hookpipe_ops.trace_sources import (
    BigQueryTrace,
    CloudLogging,
    LogFiles,
    PostgresTrace,
    SpoolTrace,
    recent_event_ids,
)

EXAMPLES = (
    "hookpipe trace 6f1c…-lp-request-uuid --since 7d",
    "hookpipe trace --recent --problems --source leadprosper",
)
VERDICT_STYLE = {"landed": "green", "in-flight": "yellow", "unknown": "yellow"}


@click.command(
    "trace",
    help="Where is this event? KEY is an event id, a lead's lp_request_uuid (every status event "
    "of it), a source's idempotency header value (webhook-id, X-GitHub-Delivery) or a Pub/Sub "
    "message id. One timeline per matching event, from ingest to both sinks, and a verdict. "
    "Exit 0 every event landed in both sinks, 1 one has not, 2 nothing matched.",
    epilog="examples: " + " · ".join(EXAMPLES),
)
@click.argument("key", required=False)
@click.option("--source", help="only this source's events")
@click.option("--since", default="7d", show_default=True, help="look back to: an age or ISO time")
@click.option(
    "--recent",
    is_flag=True,
    help="the last events (of a kind, below) with their verdicts, instead of a KEY",
)
@click.option("--problems", "kind", flag_value="problems", help="with --recent: marked events")
@click.option(
    "--dead-lettered", "kind", flag_value="dead-lettered", help="with --recent: dead letters"
)
@click.option("--spooled", "kind", flag_value="spooled", help="with --recent: still in the spool")
@click.option("--limit", type=click.IntRange(1, 200), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="machine-readable (docs/operations.md)")
@click.option("--project", envvar=list(PROJECT_ENV), required=True, help="$HOOKPIPE_PROJECT_ID")
@click.option("--database-url", envvar=DATABASE_URL_ENV, help=f"${DATABASE_URL_ENV}")
@click.option(
    "--bigquery-endpoint",
    envvar="HOOKPIPE_BIGQUERY_ENDPOINT",
    help="BigQuery emulator URL (unset in the cloud)",
)
@click.option(
    "--bigquery-dataset", help="the dataset of the events view [default: PROJECT.hookpipe]"
)
@click.option("--spool-bucket", envvar="HOOKPIPE_SPOOL_BUCKET", help="$HOOKPIPE_SPOOL_BUCKET")
@click.option("--storage-emulator", envvar="STORAGE_EMULATOR_HOST", hidden=True)
@click.option(
    "--logs-dir",
    envvar="HOOKPIPE_LOGS_DIR",
    type=click.Path(path_type=Path, file_okay=False),
    help="the local stack's log files ($HOOKPIPE_LOGS_DIR, set by `make run`); without it, "
    "Cloud Logging on Google Cloud, and unknown against emulators",
)
@click.option("--pubsub-emulator", envvar="PUBSUB_EMULATOR_HOST", hidden=True)
@sources_file_option
def command(
    key: str | None,
    source: str | None,
    since: str,
    recent: bool,
    kind: str | None,
    limit: int,
    as_json: bool,
    project: str,
    database_url: str | None,
    bigquery_endpoint: str | None,
    bigquery_dataset: str | None,
    spool_bucket: str | None,
    storage_emulator: str | None,
    logs_dir: Path | None,
    pubsub_emulator: str | None,
    sources_file: Path,
) -> int:
    if bool(key) == recent:
        raise UsageError("give a KEY, or --recent (not both)")
    if kind is not None and not recent:
        raise UsageError("--problems, --dead-lettered and --spooled go with --recent")
    if not database_url:
        raise UsageError(f"set {DATABASE_URL_ENV} (or --database-url): the events table is read")
    now = datetime.now(UTC)
    try:
        start = parse_time(since, now)
    except ValueError as exc:
        raise UsageError(f"--since: {exc}") from None
    sources = load_source_configs(sources_file)
    if source is not None and source not in sources:
        raise UsageError(f"no source {source!r} in {sources_file}")
    logs: RequestLog | None = None
    if logs_dir is not None:
        logs = LogFiles(logs_dir)
    elif not pubsub_emulator:
        logs = CloudLogging(project)
    with connect(database_url, f"--database-url / {DATABASE_URL_ENV}") as conn:
        conn.autocommit = True
        spool = SpoolTrace(spool_bucket, project, storage_emulator) if spool_bucket else None
        stores = Stores(
            postgres=PostgresTrace(conn, sources),
            bigquery=BigQueryTrace(
                bigquery_client(project, bigquery_endpoint),
                bigquery_dataset or f"{project}.hookpipe",
            ),
            spool=spool,
            logs=logs,
        )
        lookup: Lookup
        if recent:
            if kind == "spooled":
                if spool is None:
                    raise UsageError("--spooled needs --spool-bucket or HOOKPIPE_SPOOL_BUCKET")
                ids = spool.recent(limit)
            else:
                ids = recent_event_ids(conn, kind or "events", source, limit)
            lookup = lookup_of_ids(ids, start)
        else:
            assert key is not None
            lookup = lookup_for(
                key,
                sources,
                start,
                source=source,
                lead_statuses={"leadprosper": TRIGGER_STATUSES},
            )
        found = gather(lookup, stores)
    if source is not None:
        found = [f for f in found if f.source in (source, None)]
    _print(found, lookup, as_json, recent)
    return exit_code(found) if found or not recent else 0


def _print(found: list[Facts], lookup: Lookup, as_json: bool, listing: bool) -> None:
    if as_json:
        print(json.dumps({"key": lookup.key, "events": [as_dict(f) for f in found]}, indent=2))
        return
    if not found:
        what = "nothing recent of that kind" if listing else f"nothing matched {lookup.key!r}"
        err.print(f"[yellow]trace:[/] {safe(what)}")
        if not listing:
            err.print(safe(next_for_nothing(lookup)))
        return
    if listing:
        out.print(_listing(found))
        return
    for facts in found:
        out.print(_timeline_table(facts))
        found_verdict = verdict(facts)
        style = VERDICT_STYLE.get(found_verdict.kind, "red")
        out.print(f"[bold {style}]verdict:[/] {safe(found_verdict.line)}")
        if found_verdict.next:
            out.print(f"next: {safe(found_verdict.next)}")
        out.print()


def _timeline_table(facts: Facts) -> Table:
    title = f"{facts.event_id}" + (f" ({facts.source})" if facts.source else "")
    table = Table(title=safe(title), title_justify="left")
    for column in ("stage", "when (UTC)", "what", "from"):
        table.add_column(column)
    for step in timeline(facts):
        when = f"{step.at:%Y-%m-%d %H:%M:%S.%f}"[:-3] if step.at else "—"
        table.add_row(step.stage, when, safe(step.what), step.where)
    return table


def _listing(found: list[Facts]) -> Table:
    table = Table(title=f"{len(found)} events")
    for column in ("event id", "source", "first seen (UTC)", "verdict"):
        table.add_column(column)
    for facts in found:
        seen = facts.first_seen
        table.add_row(
            facts.event_id,
            safe(facts.source or "—"),
            f"{seen:%Y-%m-%d %H:%M:%S}" if seen else "—",
            safe(verdict(facts).line),
        )
    return table
