"""The dead-letter archive (``hookpipe.dead_letters`` in Postgres) for the operator CLI: one
function per operation. The worker writes it (``hookpipe_worker.archive``); here it is read, and
replayed from when Pub/Sub's 7-day retention has already dropped a dead letter.

A replay from the archive republishes the archived data with the same attributes a live replay
uses (``replay_attributes``: the CloudEvent, its history, no failure reason), waits for Pub/Sub's
confirmation, then stamps the row ``replayed_at``. Event ids are idempotent, so replaying one
twice (a run killed before the stamp, or ``--include-replayed``) still lands it once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from google.cloud.pubsub_v1 import PublisherClient
from hookpipe.deadletters import DeadLetter

from hookpipe_ops.deadletters import Filters, replay_attributes

SELECT = """
SELECT dead_letter_id, dead_lettered_at, data, attributes
FROM hookpipe.dead_letters
WHERE (%(since)s::timestamptz IS NULL OR dead_lettered_at >= %(since)s)
  AND (%(until)s::timestamptz IS NULL OR dead_lettered_at < %(until)s)
  AND (%(include_replayed)s OR replayed_at IS NULL)
ORDER BY dead_lettered_at, dead_letter_id
"""
MARK_REPLAYED = """
UPDATE hookpipe.dead_letters SET replayed_at = %s, replay_count = replay_count + 1
WHERE dead_letter_id = %s
"""
COUNTS = """
SELECT error_class, count(*), count(*) FILTER (WHERE replayed_at IS NULL)
FROM hookpipe.dead_letters GROUP BY error_class ORDER BY 2 DESC
"""


def archived(conn: Any, filters: Filters, *, include_replayed: bool) -> list[DeadLetter]:
    """The archived dead letters ``filters`` select, oldest first (the time filters apply to when
    each was dead-lettered, as for live ones)."""
    rows = conn.execute(
        SELECT,
        {"since": filters.since, "until": filters.until, "include_replayed": include_replayed},
    ).fetchall()
    letters = [
        DeadLetter(str(r[0]), r[1], bytes(r[2]), {str(k): str(v) for k, v in r[3].items()})
        for r in rows
    ]
    return [letter for letter in letters if filters.matches(letter)]


def counts(conn: Any) -> dict[str, Any]:
    rows = conn.execute(COUNTS).fetchall()
    return {
        "total": sum(r[1] for r in rows),
        "not_replayed": sum(r[2] for r in rows),
        "by_reason": {str(r[0]): int(r[1]) for r in rows},
    }


@dataclass
class ArchiveReplay:
    selected: int = 0
    replayed: int = 0
    failed: int = 0
    letters: list[DeadLetter] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """What ``--json`` prints of it."""
        return {
            "selected": self.selected,
            "replayed": self.replayed,
            "failed": self.failed,
            "messages": [letter.as_dict(80) for letter in self.letters],
        }


def replay(
    conn: Any,
    publisher: PublisherClient,
    topic: str,
    letters: Sequence[DeadLetter],
    *,
    now: Callable[[], datetime],
    dry_run: bool,
    rate: float | None,
    timeout: float = 30.0,
    on_progress: Callable[[DeadLetter, str], None] | None = None,
) -> ArchiveReplay:
    summary = ArchiveReplay(selected=len(letters), letters=list(letters))
    if dry_run:
        return summary
    for letter in letters:
        started = time.monotonic()
        moment = now()
        try:
            publisher.publish(topic, letter.data, **replay_attributes(letter, moment)).result(
                timeout=timeout
            )
        except Exception as exc:  # counted and reported (exit 4); the row stays unreplayed
            summary.failed += 1
            if on_progress:
                on_progress(letter, f"not replayed: {type(exc).__name__}")
            continue
        conn.execute(MARK_REPLAYED, (moment, letter.message_id))
        conn.commit()
        summary.replayed += 1
        if on_progress:
            on_progress(letter, "replayed")
        if rate:
            time.sleep(max(0.0, 1 / rate - (time.monotonic() - started)))
    return summary
