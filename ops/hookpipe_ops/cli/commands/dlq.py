"""``hookpipe dlq``: dead letters, live (the pull subscription) and archived (Postgres)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import click
from google.cloud.pubsub_v1 import PublisherClient, SubscriberClient
from hookpipe.deadletters import DeadLetter
from hookpipe.event import CE_ID

from hookpipe_ops.cli import archive, dlq
from hookpipe_ops.cli.common import (
    EXIT_OK,
    EXIT_REPLAY_FAILED,
    age,
    archive_connection,
    as_args,
    common_options,
    dlq_subscription,
    emit,
    err,
    filter_options,
    filters_of,
    out,
    project_id,
    safe,
    topology_of,
)
from hookpipe_ops.cli.tables import counts_table, peek_table
from hookpipe_ops.deadletters import Filters, stats
from hookpipe_ops.errors import UsageError
from hookpipe_ops.republish import Republisher
from hookpipe_ops.topology import Topology

EXAMPLES = {
    "stats": "hookpipe dlq stats --since 24h",
    "peek": "hookpipe dlq peek --limit 5 --error-class RowRejected [--from-archive]",
    "replay": "hookpipe dlq replay --error-class RowRejected --source leadprosper --dry-run",
}


def _dead_letters(args: argparse.Namespace) -> list[DeadLetter]:
    """The dead letters the filters select; looked at, then released."""
    topology = topology_of(args)
    with SubscriberClient() as subscriber:
        return dlq.collect(
            subscriber, dlq_subscription(args, topology), filters_of(args), args.scan_limit
        )


def dlq_stats(args: argparse.Namespace) -> int:
    found = stats(_dead_letters(args), datetime.now(UTC))
    conn = archive_connection(args)
    archived: dict[str, Any] | None = None
    if conn is not None:
        with conn:
            archived = archive.counts(conn)
    data = {
        "total": found.total,
        "oldest_age_seconds": found.oldest_age_seconds,
        **{f"by_{name}": counts for name, counts in found.by.items()},
        "archive": archived,
    }

    def render() -> None:
        if found.total == 0:
            out.print("no dead letters")
        else:
            oldest = age(found.oldest_age_seconds) if found.oldest_age_seconds is not None else "—"
            out.print(f"[bold]{found.total}[/] dead letters · oldest {oldest}")
        if archived is None:
            out.print("archive: not read (give --database-url or set HOOKPIPE_DATABASE_URL)")
        elif archived["total"] == 0:
            out.print("archive: no dead letters ever")
        else:
            out.print(
                f"archive: [bold]{archived['total']}[/] dead letters ever, "
                f"{archived['not_replayed']} not replayed; by reason: "
                + ", ".join(f"{safe(k)} {v}" for k, v in archived["by_reason"].items())
            )
        if found.total:
            for title, counts in found.by.items():
                out.print(counts_table(title, counts))

    emit(args, data, render)
    return EXIT_OK


def dlq_peek(args: argparse.Namespace) -> int:
    if args.from_archive:
        with _archive(args) as conn:
            letters = archive.archived(
                conn, filters_of(args), include_replayed=args.include_replayed, limit=args.limit
            )
        title = f"{len(letters)} archived dead letters"
    else:
        letters = _dead_letters(args)[: args.limit]
        title = f"{len(letters)} dead letters (released, not consumed)"
    emit(
        args,
        [letter.as_dict(args.width) for letter in letters],
        lambda: out.print(peek_table(letters, args.width, title)),
    )
    return EXIT_OK


def _archive(args: argparse.Namespace) -> Any:
    """A connection to the archive's database, or a usage error saying how to give one."""
    conn = archive_connection(args)
    if conn is None:
        raise UsageError("--from-archive needs --database-url or HOOKPIPE_DATABASE_URL")
    return conn


def _progress_printer(args: argparse.Namespace) -> Callable[[DeadLetter, str], None]:
    """One stderr line per replayed message (none with --json)."""

    def progress(letter: DeadLetter, outcome: str) -> None:
        if not args.json:
            ce_id = letter.attributes.get(CE_ID, "")
            err.print(safe(f"{letter.message_id} {letter.reason} {ce_id} → {outcome}"))

    return progress


def dlq_replay(args: argparse.Namespace) -> int:
    topology = topology_of(args)
    filters = filters_of(args)
    if filters.empty and not args.all:
        raise UsageError("replay needs a filter, or --all to replay every dead letter")
    if args.from_archive:
        return _replay_from_archive(args, topology, filters)
    topic = PublisherClient.topic_path(project_id(args), args.topic or topology.events_topic)
    # Each message is acked only once its republish is confirmed: nothing is left to flush.
    with SubscriberClient() as subscriber, PublisherClient() as publisher:
        summary = dlq.replay(
            subscriber,
            Republisher(publisher, topic, args.rate, "subscription"),
            dlq_subscription(args, topology),
            filters,
            max_messages=args.max,
            dry_run=args.dry_run,
            scan_limit=args.scan_limit,
            on_progress=_progress_printer(args),
        )
    data = {"dry_run": args.dry_run, **summary.as_dict()}

    def render() -> None:
        out.print(f"scanned {summary.scanned} · {replay_line(summary, args.dry_run, topic)}")
        if summary.failed_again:
            out.print(
                f"{summary.failed_again} replayed message(s) were dead-lettered again during "
                "this run and left in place: their cause is not fixed (`hookpipe dlq peek`)"
            )

    emit(args, data, render)
    return EXIT_REPLAY_FAILED if summary.failed else EXIT_OK


def _replay_from_archive(args: argparse.Namespace, topology: Topology, filters: Filters) -> int:
    conn = _archive(args)
    topic = PublisherClient.topic_path(project_id(args), args.topic or topology.events_topic)
    # Every republish is confirmed before its row is stamped: nothing is left to flush at exit.
    with conn, PublisherClient() as publisher:
        letters = archive.archived(
            conn, filters, include_replayed=args.include_replayed, limit=args.max
        )
        summary = archive.replay(
            conn,
            Republisher(publisher, topic, args.rate, "archive"),
            letters,
            dry_run=args.dry_run,
            on_progress=_progress_printer(args),
        )
    data = {"from_archive": True, "dry_run": args.dry_run, **summary.as_dict()}

    def render() -> None:
        out.print(f"archive: {replay_line(summary, args.dry_run, topic)}")

    emit(args, data, render)
    return EXIT_REPLAY_FAILED if summary.failed else EXIT_OK


def replay_line(
    summary: dlq.ReplaySummary | archive.ArchiveReplay, dry_run: bool, topic: str
) -> str:
    """What a replay selected, replayed (or would) and failed, and where to."""
    done = f"would replay {summary.selected}" if dry_run else f"replayed {summary.replayed}"
    return f"selected {summary.selected} · {done} · failed {summary.failed} → {topic}"


@click.group("dlq", help="Inspect and replay dead letters.")
def group() -> None:
    pass


@group.command(
    "stats",
    help="Dead letters by reason, source and age, and the oldest one's age; the archive's "
    "counts too, given a database URL.",
    epilog=f"example: {EXAMPLES['stats']}",
)
@common_options
@filter_options
def stats_command(**params: Any) -> int:
    return dlq_stats(as_args(params))


@group.command(
    "peek",
    help="Show dead letters without consuming them (they are released), or archived ones.",
    epilog=f"example: {EXAMPLES['peek']}",
)
@common_options
@filter_options
@click.option("--limit", type=int, default=20, show_default=True)
@click.option("--width", type=int, default=200, show_default=True, help="payload characters shown")
@click.option(
    "--from-archive",
    is_flag=True,
    help="show the archive (hookpipe.dead_letters) instead, e.g. what Pub/Sub's 7-day retention "
    "dropped; rows already replayed are left out",
)
@click.option("--include-replayed", is_flag=True, help="with --from-archive: also rows replayed")
def peek_command(**params: Any) -> int:
    return dlq_peek(as_args(params))


@group.command(
    "replay",
    help="Republish selected dead letters to the events topic, acking each only after its "
    "republish is confirmed.",
    epilog=f"example: {EXAMPLES['replay']}",
)
@common_options
@filter_options
@click.option(
    "--max", "max", type=int, default=1000, show_default=True, help="replay at most this many"
)
@click.option("--rate", type=float, default=None, help="messages per second at most")
@click.option("--dry-run", is_flag=True, help="show what would be replayed")
@click.option("--all", "all", is_flag=True, help="allow replay without filters")
@click.option("--topic", help="republish to this topic (default: the events topic)")
@click.option(
    "--from-archive",
    is_flag=True,
    help="replay from the archive (hookpipe.dead_letters), e.g. what Pub/Sub's 7-day retention "
    "dropped; rows already replayed are skipped",
)
@click.option(
    "--include-replayed",
    is_flag=True,
    help="with --from-archive: also rows replayed before (lands once all the same)",
)
def replay_command(**params: Any) -> int:
    return dlq_replay(as_args(params))
