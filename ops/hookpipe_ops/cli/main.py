"""``hookpipe``: the operator CLI. Works the same against the local emulator
(``PUBSUB_EMULATOR_HOST`` set, e.g. ``source .hookpipe/dev.env``) and Google Cloud.

Exit codes: 0 done (``diff``: no differences) · 1 Pub/Sub or unexpected error · 2 invalid
usage or settings · 3 ``diff`` found differences · 4 ``replay`` left messages it could not
republish · 5 ``smoke`` failed a check.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import requests
from google.api_core.exceptions import GoogleAPICallError
from google.cloud.pubsub_v1 import PublisherClient, SubscriberClient
from hookpipe.deadletters import DeadLetter
from hookpipe.logging import configure_logging
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hookpipe_ops.cli import archive, dlq, smoke
from hookpipe_ops.cli import subscriptions as subs
from hookpipe_ops.deadletters import Filters, parse_attribute_filters, parse_time
from hookpipe_ops.errors import SmokeFailed, TopologyError, UsageError
from hookpipe_ops.topology import DEFAULT_TOPOLOGY_FILE, Topology, load_topology

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_DIFF, EXIT_REPLAY_FAILED, EXIT_SMOKE_FAILED = 0, 1, 2, 3, 4, 5
out = Console()
err = Console(stderr=True)


# -- shared plumbing ---------------------------------------------------------------------------
def _project(args: argparse.Namespace) -> str:
    project = (
        args.project
        or os.environ.get("HOOKPIPE_PROJECT_ID")
        or os.environ.get("GOOGLE_CLOUD_PROJECT")
    )
    if not project:
        raise UsageError("no project: pass --project or set HOOKPIPE_PROJECT_ID")
    return str(project)


def _topology(args: argparse.Namespace) -> Topology:
    return load_topology(args.file, profile=args.profile)


def _emit(args: argparse.Namespace, data: Any, render: Any) -> None:
    if args.json:
        print(json.dumps(data, indent=2, default=str))
    else:
        render()


def _filters(args: argparse.Namespace) -> Filters:
    now = datetime.now(UTC)
    try:
        return Filters(
            attributes=parse_attribute_filters(args.attr or []),
            error_classes=frozenset(args.error_class or []),
            sources=frozenset(args.source or []),
            message_ids=frozenset(args.message_id or []),
            since=parse_time(args.since, now) if args.since else None,
            until=parse_time(args.until, now) if args.until else None,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _dlq_subscription(args: argparse.Namespace, topology: Topology) -> str:
    name = args.subscription or topology.subscription("dead-letter-pull").name
    return str(SubscriberClient.subscription_path(_project(args), name))


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def safe(text: str) -> str:
    """``text`` as rich should print it when a sender controls it: markup escaped (``[/]``
    raised MarkupError), control characters shown as ``\\xNN`` instead of reaching the
    operator's terminal (``\\x1b[41m`` would recolour it)."""
    return escape(_CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text))


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def _archive_connection(args: argparse.Namespace) -> Any:
    """A connection to the Postgres holding the dead-letter archive, or None when no database
    URL was given (the archive is then left out)."""
    url = args.database_url or os.environ.get("HOOKPIPE_DATABASE_URL")
    if not url:
        return None
    return psycopg.connect(url, connect_timeout=10)


# -- dlq ---------------------------------------------------------------------------------------
def _dead_letters(args: argparse.Namespace) -> list[DeadLetter]:
    """The dead letters the filters select; looked at, then released."""
    topology = _topology(args)
    subscriber = SubscriberClient()
    try:
        return dlq.collect(
            subscriber, _dlq_subscription(args, topology), _filters(args), args.scan_limit
        )
    finally:
        subscriber.close()


def dlq_stats(args: argparse.Namespace) -> int:
    letters = _dead_letters(args)
    now = datetime.now(UTC)
    ages = [letter.age(now).total_seconds() for letter in letters]
    buckets = Counter(
        "< 1h" if a < 3600 else "< 1d" if a < 86400 else "< 7d" if a < 7 * 86400 else "≥ 7d"
        for a in ages
    )
    groups: dict[str, dict[str, int]] = {
        "reason": dict(Counter(letter.reason for letter in letters).most_common()),
        "source": dict(Counter(letter.source for letter in letters).most_common()),
        "age": dict(buckets),
    }
    conn = _archive_connection(args)
    archived: dict[str, Any] | None = None
    if conn is not None:
        with conn:
            archived = archive.counts(conn)
    data = {
        "total": len(letters),
        "oldest_age_seconds": max(ages, default=None),
        **{f"by_{name}": counts for name, counts in groups.items()},
        "archive": archived,
    }

    def render() -> None:
        oldest = _age(max(ages)) if ages else "—"
        out.print(f"[bold]{len(letters)}[/] dead letters · oldest {oldest}")
        if archived is None:
            out.print("archive: not read (give --database-url or set HOOKPIPE_DATABASE_URL)")
        else:
            out.print(
                f"archive: [bold]{archived['total']}[/] dead letters ever, "
                f"{archived['not_replayed']} not replayed; by reason: "
                + ", ".join(f"{safe(k)} {v}" for k, v in archived["by_reason"].items())
            )
        for title, counts in groups.items():
            table = Table(title=f"by {title}")
            table.add_column(title)
            table.add_column("messages", justify="right")
            for key, count in counts.items():
                table.add_row(safe(key), str(count))
            out.print(table)

    _emit(args, data, render)
    return EXIT_OK


def peek_table(letters: Sequence[DeadLetter], width: int) -> Table:
    """Dead letters as a table; everything the sender controls is shown through :func:`safe`."""
    table = Table(title=f"{len(letters)} dead letters (released, not consumed)")
    for column in ("message id", "published", "reason", "source", "event id", "payload"):
        table.add_column(column, overflow="fold")
    for letter in letters:
        table.add_row(
            safe(letter.message_id),
            letter.publish_time.isoformat(timespec="seconds"),
            f"{safe(letter.reason)}\n[dim]{safe(letter.message)}[/]",
            safe(letter.source),
            safe(letter.attributes.get("ce-id", "")),
            safe(letter.payload_preview(width)),
        )
    return table


def dlq_peek(args: argparse.Namespace) -> int:
    letters = _dead_letters(args)[: args.limit]
    _emit(
        args,
        [letter.as_dict(args.width) for letter in letters],
        lambda: out.print(peek_table(letters, args.width)),
    )
    return EXIT_OK


def _progress_printer(args: argparse.Namespace) -> Callable[[DeadLetter, str], None]:
    """One stderr line per replayed message (none with --json)."""

    def progress(letter: DeadLetter, outcome: str) -> None:
        if not args.json:
            ce_id = letter.attributes.get("ce-id", "")
            err.print(safe(f"{letter.message_id} {letter.reason} {ce_id} → {outcome}"))

    return progress


def dlq_replay(args: argparse.Namespace) -> int:
    topology = _topology(args)
    filters = _filters(args)
    if filters.empty and not args.all:
        raise UsageError("replay needs a filter, or --all to replay every dead letter")
    if args.from_archive:
        return _replay_from_archive(args, topology, filters)
    subscriber, publisher = SubscriberClient(), PublisherClient()
    topic = publisher.topic_path(_project(args), args.topic or topology.events_topic)

    progress = _progress_printer(args)

    try:
        summary = dlq.replay(
            subscriber,
            publisher,
            _dlq_subscription(args, topology),
            topic,
            filters,
            max_messages=args.max,
            rate=args.rate,
            dry_run=args.dry_run,
            scan_limit=args.scan_limit,
            on_progress=progress,
        )
    finally:
        subscriber.close()
        publisher.stop()
    data = {
        "dry_run": args.dry_run,
        "scanned": summary.scanned,
        "selected": summary.selected,
        "replayed": summary.replayed,
        "failed": summary.failed,
        "failed_again": summary.failed_again,
        "messages": [letter.as_dict(80) for letter in summary.letters],
    }

    def render() -> None:
        verb = "would replay" if args.dry_run else "replayed"
        out.print(
            f"scanned {summary.scanned} · selected {summary.selected} · {verb} "
            f"{summary.selected if args.dry_run else summary.replayed} · failed "
            f"{summary.failed} → {topic}"
        )
        if summary.failed_again:
            out.print(
                f"{summary.failed_again} replayed message(s) were dead-lettered again during "
                "this run and left in place: their cause is not fixed (`hookpipe dlq peek`)"
            )

    _emit(args, data, render)
    return EXIT_REPLAY_FAILED if summary.failed else EXIT_OK


def _replay_from_archive(args: argparse.Namespace, topology: Topology, filters: Filters) -> int:
    conn = _archive_connection(args)
    if conn is None:
        raise UsageError("--from-archive needs --database-url or HOOKPIPE_DATABASE_URL")
    publisher = PublisherClient()
    topic = publisher.topic_path(_project(args), args.topic or topology.events_topic)

    progress = _progress_printer(args)

    try:
        with conn:
            letters = archive.archived(conn, filters, include_replayed=args.include_replayed)
            summary = archive.replay(
                conn,
                publisher,
                topic,
                letters[: args.max],
                now=lambda: datetime.now(UTC),
                dry_run=args.dry_run,
                rate=args.rate,
                on_progress=progress,
            )
    finally:
        publisher.stop()
    data = {
        "from_archive": True,
        "dry_run": args.dry_run,
        "selected": summary.selected,
        "replayed": summary.replayed,
        "failed": summary.failed,
        "messages": [letter.as_dict(80) for letter in summary.letters],
    }

    def render() -> None:
        verb = "would replay" if args.dry_run else "replayed"
        out.print(
            f"archive: selected {summary.selected} · {verb} "
            f"{summary.selected if args.dry_run else summary.replayed} · failed "
            f"{summary.failed} → {topic}"
        )

    _emit(args, data, render)
    return EXIT_REPLAY_FAILED if summary.failed else EXIT_OK


# -- subscriptions -----------------------------------------------------------------------------
def _spec_keys(args: argparse.Namespace, topology: Topology) -> list[str]:
    if args.name:
        by_name = {spec.name: key for key, spec in topology.subscriptions.items()}
        key = by_name.get(args.name, args.name)
        topology.subscription(key)
        return [key]
    return list(topology.subscriptions)


def _live(subscriber: SubscriberClient, project: str, name: str) -> dict[str, Any]:
    path = subscriber.subscription_path(project, name)
    return subs.live_settings(subscriber.get_subscription(subscription=path))


def _settings_table(title: str, rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> Table:
    table = Table(title=title)
    for header in headers:
        table.add_column(header)
    for row in rows:
        table.add_row(*(("—" if v is None else str(v)) for v in row))
    return table


def subscriptions_show(args: argparse.Namespace) -> int:
    topology, project = _topology(args), _project(args)
    subscriber = SubscriberClient()
    try:
        live = {
            topology.subscriptions[k].name: _live(
                subscriber, project, topology.subscriptions[k].name
            )
            for k in _spec_keys(args, topology)
        }
    finally:
        subscriber.close()

    def render() -> None:
        for name, settings in live.items():
            out.print(_settings_table(name, list(settings.items()), ("field", "live")))

    _emit(args, live, render)
    return EXIT_OK


def _differences(
    args: argparse.Namespace,
    topology: Topology,
    subscriber: SubscriberClient,
) -> dict[str, tuple[dict[str, Any], dict[str, Any], list[subs.Difference]]]:
    project = _project(args)
    result = {}
    for key in _spec_keys(args, topology):
        spec = topology.subscriptions[key]
        live = _live(subscriber, project, spec.name)
        desired = subs.desired_settings(spec, args.push_endpoint)
        result[spec.name] = (live, desired, subs.diff(live, desired))
    return result


def _warn(topology: Topology) -> None:
    for warning in subs.check_topology(topology):
        err.print(f"[yellow]warning:[/] {warning}")


def subscriptions_diff(args: argparse.Namespace) -> int:
    topology = _topology(args)
    _warn(topology)
    subscriber = SubscriberClient()
    try:
        found = _differences(args, topology, subscriber)
    finally:
        subscriber.close()
    data = {
        name: [{"field": d.field, "live": d.live, "file": d.desired} for d in diffs]
        for name, (_, _, diffs) in found.items()
    }

    def render() -> None:
        for name, (_, _, diffs) in found.items():
            if not diffs:
                out.print(f"{name}: matches the file")
                continue
            out.print(
                _settings_table(
                    name, [(d.field, d.live, d.desired) for d in diffs], ("field", "live", "file")
                )
            )

    _emit(args, data, render)
    return EXIT_DIFF if any(data.values()) else EXIT_OK


def subscriptions_apply(args: argparse.Namespace) -> int:
    topology, project = _topology(args), _project(args)
    _warn(topology)
    subscriber = SubscriberClient()
    changes: dict[str, Any] = {}
    try:
        for name, (live, desired, diffs) in _differences(args, topology, subscriber).items():
            if not diffs:
                changes[name] = {"changed": []}
                continue
            fields = {d.field for d in diffs}
            request, mask = subs.update_request(project, name, subs.merged(live, desired), fields)
            subscriber.update_subscription(subscription=request, update_mask=mask)
            after = _live(subscriber, project, name)
            changes[name] = {
                "changed": sorted(fields),
                "update_mask": list(mask.paths),
                "before": {f: live[f] for f in sorted(fields)},
                "after": {f: after[f] for f in sorted(fields)},
            }
    finally:
        subscriber.close()

    def render() -> None:
        for name, change in changes.items():
            if not change["changed"]:
                out.print(f"{name}: already matches the file")
                continue
            out.print(
                _settings_table(
                    f"{name} (update mask: {', '.join(change['update_mask'])})",
                    [(f, change["before"][f], change["after"][f]) for f in change["changed"]],
                    ("field", "before", "after"),
                )
            )

    _emit(args, changes, render)
    return EXIT_OK


def _coerce(field: str, value: str) -> Any:
    if field in (
        "push_endpoint",
        "push_oidc_service_account",
        "push_oidc_audience",
        "dead_letter_policy.topic",
    ):
        return value
    if field == "enable_exactly_once_delivery":
        if value.lower() not in ("true", "false"):
            raise UsageError(f"{field}: expected true or false, got {value!r}")
        return value.lower() == "true"
    if not value.isdigit():
        raise UsageError(f"{field}: expected a whole number of seconds or attempts, got {value!r}")
    return int(value)


def subscriptions_set(args: argparse.Namespace) -> int:
    if args.field not in subs.FIELDS:
        raise UsageError(f"unknown field {args.field!r}; one of: {', '.join(subs.FIELDS)}")
    topology, project = _topology(args), _project(args)
    [key] = _spec_keys(args, topology)
    spec = topology.subscriptions[key]
    value = _coerce(args.field, args.value)
    subscriber = SubscriberClient()
    try:
        live = _live(subscriber, project, spec.name)
        candidate = subs.merged(live, {args.field: value})
        _validate(spec, candidate)
        request, mask = subs.update_request(project, spec.name, candidate, {args.field})
        subscriber.update_subscription(subscription=request, update_mask=mask)
        after = _live(subscriber, project, spec.name)
    finally:
        subscriber.close()
    data = {
        "subscription": spec.name,
        "field": args.field,
        "before": live[args.field],
        "after": after[args.field],
    }
    file_value = subs.desired_settings(spec, args.push_endpoint).get(args.field)

    def render() -> None:
        out.print(
            _settings_table(
                spec.name,
                [(args.field, live[args.field], after[args.field])],
                ("field", "before", "after"),
            )
        )

    _emit(args, data, render)
    if file_value is not None and file_value != after[args.field]:
        err.print(
            f"[yellow]warning:[/] {spec.name} now drifts from {args.file or 'the file'}; "
            f"to keep this value, set subscriptions.{key}.{args.field} = "
            f"{json.dumps(after[args.field])} (it is {json.dumps(file_value)}), "
            "or run `hookpipe subscriptions apply` to go back"
        )
    return EXIT_OK


def _validate(spec: Any, settings: dict[str, Any]) -> None:
    """Validate a live change with the same rules as the file, naming the field and range."""
    raw = spec.model_dump(by_alias=True)
    raw["ack_deadline_seconds"] = settings["ack_deadline_seconds"]
    raw["message_retention_seconds"] = settings["message_retention_seconds"]
    if settings.get("retry_policy.minimum_backoff_seconds") is not None:
        raw["retry_policy"] = {
            "minimum_backoff_seconds": settings["retry_policy.minimum_backoff_seconds"],
            "maximum_backoff_seconds": settings["retry_policy.maximum_backoff_seconds"],
        }
    if settings.get("dead_letter_policy.topic") is not None:
        raw["dead_letter_policy"] = {
            "topic": settings["dead_letter_policy.topic"],
            "max_delivery_attempts": settings["dead_letter_policy.max_delivery_attempts"],
        }
    try:
        type(spec).model_validate(raw)
    except ValidationError as exc:
        raise TopologyError(
            "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        ) from None


# -- smoke -------------------------------------------------------------------------------------
def smoke_run(args: argparse.Namespace) -> int:
    token = os.environ.get(args.token_env)
    if not token:
        raise UsageError(f"set {args.token_env} to an active token of source {args.source!r}")
    table = None if args.no_rows else args.bigquery_table or f"{_project(args)}.hookpipe.raw_events"
    target = smoke.Target(args.ingest_url, token, args.source)
    with requests.Session() as http:
        try:
            finders: list[smoke.RowFinder] = []
            if table:
                finders.append(smoke.BigQueryRows(table, args.bigquery_endpoint))
                if database_url := os.environ.get(args.database_url_env):
                    finders.append(smoke.PostgresRows(database_url))
            for passed in smoke.run(http, target, finders, args.timeout):
                out.print(f"[green]smoke: ok[/] {passed}")
        except (SmokeFailed, requests.RequestException) as exc:
            err.print(f"[red]smoke: failed[/] {exc}")
            return EXIT_SMOKE_FAILED
    out.print("smoke: passed")
    return EXIT_OK


# -- argument parsing --------------------------------------------------------------------------
EXAMPLES = {
    "dlq stats": "hookpipe dlq stats --since 24h",
    "dlq peek": "hookpipe dlq peek --limit 5 --error-class RowRejected",
    "dlq replay": "hookpipe dlq replay --error-class RowRejected --source leadprosper --dry-run",
    "subscriptions show": "hookpipe subscriptions show hookpipe-worker-push",
    "subscriptions diff": "hookpipe subscriptions diff --push-endpoint https://worker-xyz.a.run.app",
    "subscriptions apply": "hookpipe subscriptions apply --profile local",
    "subscriptions set": "hookpipe subscriptions set hookpipe-worker-push ack_deadline_seconds 120",
    "smoke": "HOOKPIPE_SMOKE_TOKEN=… hookpipe smoke https://hookpipe-ingest-xyz.a.run.app",
}


def _parser() -> argparse.ArgumentParser:
    project = argparse.ArgumentParser(add_help=False)
    project.add_argument("--project", help="Google Cloud project (default: $HOOKPIPE_PROJECT_ID)")
    common = argparse.ArgumentParser(add_help=False, parents=[project])
    common.add_argument(
        "--file",
        type=Path,
        default=None,
        help=f"subscription settings file (default: {DEFAULT_TOPOLOGY_FILE})",
    )
    common.add_argument(
        "--profile",
        default=os.environ.get("HOOKPIPE_PROFILE"),
        help="a profile of the file, e.g. local",
    )
    common.add_argument("--json", action="store_true", help="machine-readable output")

    filters = argparse.ArgumentParser(add_help=False)
    filters.add_argument("--subscription", help="dead-letter subscription (default: the file's)")
    filters.add_argument(
        "--attr",
        action="append",
        metavar="KEY=VALUE",
        help="attribute equals value (repeat a key for alternatives)",
    )
    filters.add_argument("--error-class", action="append", help="reason, e.g. RowRejected")
    filters.add_argument("--source", action="append", help="webhook source, e.g. leadprosper")
    filters.add_argument("--message-id", action="append", help="dead-letter message id")
    filters.add_argument("--since", help="published at or after: ISO 8601 or an age (2h, 7d)")
    filters.add_argument("--until", help="published before: ISO 8601 or an age")
    filters.add_argument(
        "--database-url",
        help="Postgres holding the dead-letter archive (default: $HOOKPIPE_DATABASE_URL)",
    )
    filters.add_argument(
        "--scan-limit",
        type=int,
        default=10000,
        help="look at no more than this many messages (default 10000)",
    )

    parser = argparse.ArgumentParser(
        prog="hookpipe",
        description="Operate hookpipe: dead letters, subscriptions and smoke tests.",
        epilog=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    groups = parser.add_subparsers(dest="group", required=True)

    def command(
        group: argparse._SubParsersAction[argparse.ArgumentParser],
        name: str,
        full: str,
        help_: str,
        parents: list[argparse.ArgumentParser],
    ) -> argparse.ArgumentParser:
        return group.add_parser(
            name,
            help=help_,
            description=help_,
            parents=parents,
            epilog=f"example:\n  {EXAMPLES[full]}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    dlq_parser = groups.add_parser("dlq", help="inspect and replay dead letters")
    dlq_cmds = dlq_parser.add_subparsers(dest="command", required=True)
    stats = command(
        dlq_cmds,
        "stats",
        "dlq stats",
        "Dead letters by reason, source and age, and the oldest one's age.",
        [common, filters],
    )
    stats.set_defaults(run=dlq_stats)
    peek = command(
        dlq_cmds,
        "peek",
        "dlq peek",
        "Show dead letters without consuming them (they are released).",
        [common, filters],
    )
    peek.add_argument("--limit", type=int, default=20)
    peek.add_argument("--width", type=int, default=200, help="payload characters shown")
    peek.set_defaults(run=dlq_peek)
    replay = command(
        dlq_cmds,
        "replay",
        "dlq replay",
        "Republish selected dead letters to the events topic, acking each only "
        "after its republish is confirmed.",
        [common, filters],
    )
    replay.add_argument("--max", type=int, default=1000, help="replay at most this many")
    replay.add_argument("--rate", type=float, default=None, help="messages per second at most")
    replay.add_argument("--dry-run", action="store_true", help="show what would be replayed")
    replay.add_argument("--all", action="store_true", help="allow replay without filters")
    replay.add_argument("--topic", help="republish to this topic (default: the events topic)")
    replay.add_argument(
        "--from-archive",
        action="store_true",
        help="replay from the archive (hookpipe.dead_letters), e.g. what Pub/Sub's 7-day "
        "retention dropped; rows already replayed are skipped",
    )
    replay.add_argument(
        "--include-replayed",
        action="store_true",
        help="with --from-archive: also rows replayed before (lands once all the same)",
    )
    replay.set_defaults(run=dlq_replay)

    sub_parser = groups.add_parser("subscriptions", help="tune subscriptions from the file")
    sub_cmds = sub_parser.add_subparsers(dest="command", required=True)
    endpoint = argparse.ArgumentParser(add_help=False)
    endpoint.add_argument(
        "--push-endpoint",
        default=os.environ.get("WORKER_URL"),
        help="the worker's base URL (default: $WORKER_URL)",
    )
    for name, run, help_ in (
        ("show", subscriptions_show, "Live settings of the file's subscriptions."),
        (
            "diff",
            subscriptions_diff,
            "Live settings against the file, field by field (exit code 3 when they differ).",
        ),
        (
            "apply",
            subscriptions_apply,
            "Update only the fields that differ from the file "
            "(with an update mask), showing before and after.",
        ),
    ):
        cmd = command(sub_cmds, name, f"subscriptions {name}", help_, [common, endpoint])
        cmd.add_argument("name", nargs="?", help="one subscription (default: all in the file)")
        cmd.set_defaults(run=run)
    set_cmd = command(
        sub_cmds,
        "set",
        "subscriptions set",
        "Emergency change of one live field; warns that the file now drifts.",
        [common, endpoint],
    )
    set_cmd.add_argument("name")
    set_cmd.add_argument("field", help=f"one of: {', '.join(subs.FIELDS)}")
    set_cmd.add_argument("value")
    set_cmd.set_defaults(run=subscriptions_set)

    smoke_cmd = command(
        groups,
        "smoke",
        "smoke",
        "Health, a refused wrong token, then a token-authenticated webhook in and its row out "
        "(BigQuery; Postgres too when the database URL variable is set). Exit code 5 on failure.",
        [project],
    )
    smoke_cmd.add_argument("ingest_url", help="ingest's base URL, e.g. a tagged revision's URL")
    smoke_cmd.add_argument("--source", default="leadprosper", help="a token-scheme source")
    smoke_cmd.add_argument(
        "--token-env",
        default="HOOKPIPE_SMOKE_TOKEN",
        help="variable holding the source's token (default: HOOKPIPE_SMOKE_TOKEN)",
    )
    smoke_cmd.add_argument(
        "--bigquery-table", help="raw events table (default: PROJECT.hookpipe.raw_events)"
    )
    smoke_cmd.add_argument(
        "--bigquery-endpoint",
        default=os.environ.get("HOOKPIPE_BIGQUERY_ENDPOINT"),
        help="BigQuery emulator URL (default: $HOOKPIPE_BIGQUERY_ENDPOINT; unset in the cloud)",
    )
    smoke_cmd.add_argument(
        "--database-url-env",
        default="HOOKPIPE_SMOKE_DATABASE_URL",
        help="variable holding a Postgres URL to look for the row in too (default: "
        "HOOKPIPE_SMOKE_DATABASE_URL; unset: BigQuery only)",
    )
    smoke_cmd.add_argument(
        "--timeout", type=float, default=90.0, help="seconds to wait for the row (default 90)"
    )
    smoke_cmd.add_argument("--no-rows", action="store_true", help="skip the row-out check")
    smoke_cmd.set_defaults(run=smoke_run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # Audit lines (one per replayed message) go to stderr as Cloud Logging JSON.
    configure_logging(os.environ.get("HOOKPIPE_PROJECT_ID", "hookpipe"), "INFO", stream=sys.stderr)
    try:
        return int(args.run(args))
    except (UsageError, TopologyError) as exc:
        err.print(f"[red]hookpipe:[/] {safe(str(exc))}")
        return EXIT_USAGE
    except GoogleAPICallError as exc:
        err.print(f"[red]hookpipe: Pub/Sub error:[/] {safe(str(exc))}")
        return EXIT_ERROR
    except psycopg.Error as exc:
        err.print(
            f"[red]hookpipe: archive database error:[/] {safe(f'{type(exc).__name__}: {exc}')}"
        )
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
