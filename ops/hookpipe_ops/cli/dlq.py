"""``hookpipe dlq``: dead letters, live (the pull subscription) and archived (Postgres)."""

from __future__ import annotations

from contextlib import ExitStack
from datetime import UTC, datetime
from typing import Any

import click
from google.cloud.pubsub_v1 import PublisherClient, SubscriberClient
from hookpipe.deadletters import DeadLetter
from hookpipe.event import CE_ID

from hookpipe_ops.cli.common import (
    EXIT_OK,
    EXIT_REPLAY_FAILED,
    Selection,
    Target,
    age,
    emit,
    err,
    json_option,
    out,
    safe,
    selection_options,
    target_options,
)
from hookpipe_ops.cli.tables import counts_table, peek_table
from hookpipe_ops.dead_letter_archive import ArchivedLetters, archived, counts
from hookpipe_ops.dead_letter_subscription import SubscriptionLetters, collect
from hookpipe_ops.deadletters import stats
from hookpipe_ops.errors import UsageError
from hookpipe_ops.replay import Progress, ReplaySource, ReplaySummary, replay
from hookpipe_ops.republish import Republisher

EXAMPLES = {
    "stats": "hookpipe dlq stats --since 24h",
    "peek": "hookpipe dlq peek --limit 5 --error-class RowRejected [--from-archive]",
    "replay": "hookpipe dlq replay --error-class RowRejected --source leadprosper --dry-run",
}


@click.group("dlq", help="Inspect and replay dead letters.")
def group() -> None:
    pass


def _live_letters(target: Target, selection: Selection) -> list[DeadLetter]:
    """The live dead letters the selection matches; looked at, then released."""
    with SubscriberClient() as subscriber:
        return collect(
            subscriber,
            selection.subscription_path(target),
            selection.filters,
            selection.scan_limit,
        )


@group.command(
    "stats",
    help="Dead letters by reason, source and age, and the oldest one's age; the archive's "
    "counts too, given a database URL.",
    epilog=f"example: {EXAMPLES['stats']}",
)
@target_options
@selection_options
@json_option
def dlq_stats(target: Target, selection: Selection, as_json: bool) -> int:
    found = stats(_live_letters(target, selection), datetime.now(UTC))
    conn = selection.archive()
    archived: dict[str, Any] | None = None
    if conn is not None:
        with conn:
            archived = counts(conn)
    data = {
        "total": found.total,
        "oldest_age_seconds": found.oldest_age_seconds,
        **{f"by_{name}": by for name, by in found.by.items()},
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
            for title, by in found.by.items():
                out.print(counts_table(title, by))

    emit(as_json, data, render)
    return EXIT_OK


@group.command(
    "peek",
    help="Show dead letters without consuming them (they are released), or archived ones.",
    epilog=f"example: {EXAMPLES['peek']}",
)
@target_options
@selection_options
@json_option
@click.option("--limit", type=int, default=20, show_default=True)
@click.option("--width", type=int, default=200, show_default=True, help="payload characters shown")
@click.option(
    "--from-archive",
    is_flag=True,
    help="show the archive (hookpipe.dead_letters) instead, e.g. what Pub/Sub's 7-day retention "
    "dropped; rows already replayed are left out",
)
@click.option("--include-replayed", is_flag=True, help="with --from-archive: also rows replayed")
def dlq_peek(
    target: Target,
    selection: Selection,
    *,
    limit: int,
    width: int,
    from_archive: bool,
    include_replayed: bool,
    as_json: bool,
) -> int:
    if from_archive:
        with selection.required_archive() as conn:
            letters = archived(
                conn, selection.filters, include_replayed=include_replayed, limit=limit
            )
        title = f"{len(letters)} archived dead letters"
    else:
        letters = _live_letters(target, selection)[:limit]
        title = f"{len(letters)} dead letters (released, not consumed)"
    emit(
        as_json,
        [letter.as_dict(width) for letter in letters],
        lambda: out.print(peek_table(letters, width, title)),
    )
    return EXIT_OK


def _progress_printer(as_json: bool) -> Progress:
    """One stderr line per replayed message (none with --json)."""

    def progress(letter: DeadLetter, outcome: str) -> None:
        if not as_json:
            ce_id = letter.attributes.get(CE_ID, "")
            err.print(safe(f"{letter.message_id} {letter.reason} {ce_id} → {outcome}"))

    return progress


@group.command(
    "replay",
    help="Republish selected dead letters to the events topic, acking each only after its "
    "republish is confirmed.",
    epilog=f"example: {EXAMPLES['replay']}",
)
@target_options
@selection_options
@json_option
@click.option(
    "--max",
    "max_messages",
    type=int,
    default=1000,
    show_default=True,
    help="replay at most this many",
)
@click.option("--rate", type=float, default=None, help="messages per second at most")
@click.option("--dry-run", is_flag=True, help="show what would be replayed")
@click.option("--all", "replay_all", is_flag=True, help="allow replay without filters")
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
def dlq_replay(
    target: Target,
    selection: Selection,
    *,
    max_messages: int,
    rate: float | None,
    dry_run: bool,
    replay_all: bool,
    topic: str | None,
    from_archive: bool,
    include_replayed: bool,
    as_json: bool,
) -> int:
    if selection.filters.empty and not replay_all:
        raise UsageError("replay needs a filter, or --all to replay every dead letter")
    topic_path = PublisherClient.topic_path(
        target.project_id, topic or target.topology.events_topic
    )
    # Each dead letter is acked (or its row stamped) only once its republish is confirmed:
    # nothing is left to flush at exit.
    with ExitStack() as stack:
        source: ReplaySource
        if from_archive:
            conn = stack.enter_context(selection.required_archive())
            republisher = Republisher(
                stack.enter_context(PublisherClient()), topic_path, rate, "archive"
            )
            source = ArchivedLetters(
                conn,
                selection.filters,
                include_replayed=include_replayed,
                limit=max_messages,
                now=republisher.now,
            )
        else:
            subscriber = stack.enter_context(SubscriberClient())
            republisher = Republisher(
                stack.enter_context(PublisherClient()), topic_path, rate, "subscription"
            )
            source = SubscriptionLetters(
                subscriber,
                selection.subscription_path(target),
                selection.filters,
                selection.scan_limit,
            )
        summary = replay(
            source,
            republisher,
            max_messages=max_messages,
            dry_run=dry_run,
            on_progress=_progress_printer(as_json),
        )
    data = {"from_archive": from_archive, "dry_run": dry_run, **summary.as_dict()}

    def render() -> None:
        where = "archive" if from_archive else f"scanned {summary.scanned}"
        out.print(f"{where} · {replay_line(summary, dry_run, topic_path)}")
        if summary.failed_again:
            out.print(
                f"{summary.failed_again} replayed message(s) were dead-lettered again during "
                "this run and left in place: their cause is not fixed (`hookpipe dlq peek`)"
            )

    emit(as_json, data, render)
    return EXIT_REPLAY_FAILED if summary.failed else EXIT_OK


def replay_line(summary: ReplaySummary, dry_run: bool, topic: str) -> str:
    """What a replay selected, replayed (or would) and failed, and where to."""
    done = f"would replay {summary.selected}" if dry_run else f"replayed {summary.replayed}"
    return f"selected {summary.selected} · {done} · failed {summary.failed} → {topic}"
