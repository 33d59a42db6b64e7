"""``hookpipe reconcile leadprosper``: backfill, from LeadProsper's API, what no webhook brought.

Options map straight onto typed parameters; the run is :func:`hookpipe_ops.reconcile.reconcile`.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
from hookpipe.logging import log_event
from hookpipe.sources import load_source_configs
from rich.table import Table

from hookpipe_ops.cli.common import (
    DATABASE_URL_ENV,
    EXIT_ERROR,
    EXIT_OK,
    err,
    out,
    safe,
    sources_file_option,
    topology_file_option,
)
from hookpipe_ops.deadletters import parse_time
from hookpipe_ops.errors import UsageError
from hookpipe_ops.leadprosper_api import DEFAULT_API_URL, LeadProsperApi
from hookpipe_ops.reconcile import ReconcileReport
from hookpipe_ops.reconcile_job import ReconcileRun, run_reconcile
from hookpipe_ops.reconcile_ledger import LeaseHeld
from hookpipe_ops.topology import load_topology

EXIT_LEASE_HELD = 6  # another run is reconciling this source: this one did nothing
logger = logging.getLogger("hookpipe.reconcile")


@click.group("reconcile", help="Backfill from a sender's own API what no webhook brought.")
def group() -> None:
    pass


@group.command(
    "leadprosper",
    help="Every lead LeadProsper recorded in the window, in both sinks: the events a trigger "
    "would have sent for what is missing are published with the ids ingest gives them, marked "
    "origin=reconcile (a returned lead also gets a RETURNED event). One run at a time (a lease "
    "in Postgres). Exit 1 when the window was not finished, 6 when another run holds the lease.",
    epilog="example: hookpipe reconcile leadprosper --since 48h --dry-run",
)
@click.option("--project", envvar="HOOKPIPE_PROJECT_ID", required=True, help="$HOOKPIPE_PROJECT_ID")
@click.option("--since", help="start: an age (48h, 7d) or ISO time [default: the source's window]")
@click.option("--until", help="end: an age or ISO time [default: now]")
@click.option("--campaign", multiple=True, help="only this campaign id (repeatable)")
@click.option("--dry-run", is_flag=True, help="compare and report; publish and write nothing")
@click.option(
    "--ignore-checkpoints",
    is_flag=True,
    help="list every day again, even one a run finished listing within resume_minutes",
)
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
@click.option("--topic", help="publish to this topic [default: the file's events topic]")
@topology_file_option
@click.option("--database-url", envvar=DATABASE_URL_ENV, help="Postgres the sinks' events are in")
@click.option(
    "--api-url", envvar="HOOKPIPE_LEADPROSPER_API_URL", default=DEFAULT_API_URL, show_default=True
)
@click.option(
    "--api-key", envvar="HOOKPIPE_LEADPROSPER_API_KEY", help="$HOOKPIPE_LEADPROSPER_API_KEY"
)
@sources_file_option
def leadprosper(
    project: str,
    since: str | None,
    until: str | None,
    campaign: tuple[str, ...],
    dry_run: bool,
    ignore_checkpoints: bool,
    as_json: bool,
    topic: str | None,
    file: Path,
    database_url: str | None,
    api_url: str,
    api_key: str | None,
    sources_file: Path,
) -> int:
    config = load_source_configs(sources_file).get("leadprosper")
    if config is None or config.reconcile is None:
        raise UsageError(f"{sources_file} has no [leadprosper.reconcile] table")
    if not api_key:
        raise UsageError("set HOOKPIPE_LEADPROSPER_API_KEY (LeadProsper's account API key)")
    if not database_url:
        raise UsageError(f"set {DATABASE_URL_ENV} (or --database-url): what landed is compared")
    if config.current_state is None:
        raise UsageError(f"{sources_file}: leadprosper has no [current_state] for the figures")
    now = datetime.now(UTC)
    try:
        end = parse_time(until, now) if until else now
        start = (
            parse_time(since, now)
            if since
            else end - timedelta(hours=config.reconcile.window_hours)
        )
    except ValueError as exc:
        raise UsageError(f"--since/--until: {exc}") from None
    if start >= end:
        raise UsageError("--since must be before --until")
    api = LeadProsperApi(
        api_url, api_key, config.reconcile.requests_per_minute, config.reconcile.timezone
    )
    run = ReconcileRun(
        project=project,
        source="leadprosper",
        config=config,
        start=start,
        end=end,
        campaigns=campaign,
        dry_run=dry_run,
        resume=not ignore_checkpoints,
        events_topic=topic or load_topology(file).events_topic,
        database_url=database_url,
        database_url_named=f"--database-url / {DATABASE_URL_ENV}",
    )
    try:
        report = run_reconcile(run, api)
    except LeaseHeld as exc:
        err.print(f"[yellow]reconcile: not run:[/] {safe(str(exc))}")
        _log_line(logging.WARNING, f"reconcile leadprosper not run: {exc}", project,
                  {"event": "reconcile_not_run"})  # fmt: skip
        return EXIT_LEASE_HELD
    _log_run(report, project)
    if as_json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        out.print(_table(report))
        verb = "would publish" if dry_run else "published"
        out.print(
            f"reconcile {report.source} {report.start:%Y-%m-%d %H:%M} → {report.end:%Y-%m-%d %H:%M}"
            f" UTC: {verb} {report.backfilled}, {report.requests} API requests"
            f" ({report.pages} {'page' if report.pages == 1 else 'pages'})"
        )
        for note in report.notes:
            err.print(f"[yellow]reconcile:[/] {safe(note)}")
    if report.error is not None:
        err.print(f"[red]reconcile: the window was not finished:[/] {safe(report.error)}")
        return EXIT_ERROR
    return EXIT_OK


def _table(report: ReconcileReport) -> Table:
    table = Table(title=f"{report.source}: LeadProsper's leads against the sinks")
    text = ("campaign", "day", "checked")
    for column in ("campaign", "day", "LeadProsper", "events", "ours", "backfilled", "returned",
                   "checked"):  # fmt: skip
        table.add_column(column, justify="left" if column in text else "right")
    for (campaign, day), count in sorted(report.days.items()):
        table.add_row(
            safe(campaign), day, str(count.leads), str(count.events), str(count.present),
            str(count.backfilled), str(count.returned), count.checked,
        )  # fmt: skip
    return table


def _log_line(level: int, message: str, project: str, fields: dict[str, Any]) -> None:
    """One structured line on stderr (Cloud Logging's format), for the job's log-based metrics;
    not on a terminal, where the command's own output says the same to a person."""
    if not sys.stderr.isatty():
        log_event(logger, level, message, project_id=project, fields=fields)


def _log_run(report: ReconcileReport, project: str) -> None:
    """The run's one log line: the logs-based metrics and alerts (infra/terraform/reconcile.tf)
    count its ``backfilled`` and its ``finished``."""
    listed = [d for d in report.days.values() if d.checked == "listed"]
    level = logging.ERROR if not report.finished else logging.INFO
    if report.finished and report.backfilled and not report.dry_run:
        level = logging.WARNING  # webhooks are being lost: docs/operations.md says where to look
    fields = {
        "event": "reconcile_run",
        "source": report.source,
        "start": report.start.isoformat(),
        "end": report.end.isoformat(),
        "dry_run": report.dry_run,
        "finished": report.finished,
        "backfilled": report.backfilled,
        "returned": sum(d.returned for d in listed),
        "requests": report.requests,
        "pages": report.pages,
        "listed": len(listed),
        "skipped": len(report.days) - len(listed),
        "error": report.error,
        "notes": report.notes,
    }
    outcome = "finished" if report.finished else f"not finished: {report.error}"
    message = f"reconcile {report.source}: {report.backfilled} backfilled, {outcome}"
    _log_line(level, message, project, fields)
