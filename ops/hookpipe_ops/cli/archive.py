"""The dead-letter archive (``hookpipe.dead_letters`` in Postgres) for the operator CLI: one
function per operation. The worker writes it (``hookpipe_worker.archive``); here it is read, and
replayed from when Pub/Sub's 7-day retention has already dropped a dead letter.

A replay from the archive republishes the archived data the way a live replay does
(``hookpipe_ops.republish``: paced, the same attributes, confirmed, one audit line each), then
stamps the row ``replayed_at``. Event ids are idempotent, so replaying one
twice (a run killed before the stamp, or ``--include-replayed``) still lands it once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from hookpipe.deadletters import DeadLetter
from psycopg import sql

from hookpipe_ops.deadletters import Filters
from hookpipe_ops.errors import RepublishFailed
from hookpipe_ops.republish import Republisher

# What a peek reads of each archived message's data: enough for its preview (a typical event
# whole, so JSON is shown compacted), never a 9 MiB body per row.
PREVIEW_BYTES = 64 * 1024
DATA_OF = "SELECT data FROM hookpipe.dead_letters WHERE dead_letter_id = %s"
MARK_REPLAYED = """
UPDATE hookpipe.dead_letters SET replayed_at = %s, replay_count = replay_count + 1
WHERE dead_letter_id = %s
"""
COUNTS = """
SELECT error_class, count(*), count(*) FILTER (WHERE replayed_at IS NULL)
FROM hookpipe.dead_letters GROUP BY error_class ORDER BY 2 DESC
"""


def archived(
    conn: Any,
    filters: Filters,
    *,
    include_replayed: bool,
    limit: int,
    data_bytes: int | None = PREVIEW_BYTES,
) -> list[DeadLetter]:
    """The first ``limit`` archived dead letters ``filters`` select, oldest first (the time filters
    apply to when each was dead-lettered, as for live ones). Filtered and limited in the database;
    each one's data is its first ``data_bytes`` bytes, or empty with ``None`` (:func:`replay`
    reads each one's whole data as it publishes it)."""
    query, params = select_statement(filters, include_replayed, limit, data_bytes)
    rows = conn.execute(query, params).fetchall()
    return [
        DeadLetter(str(r[0]), r[1], bytes(r[2] or b""), {str(k): str(v) for k, v in r[3].items()})
        for r in rows
    ]


def select_statement(
    filters: Filters, include_replayed: bool, limit: int, data_bytes: int | None
) -> tuple[sql.Composed, dict[str, Any]]:
    """The one query that selects what ``filters`` match (``Filters.matches``, in SQL)."""
    conditions: list[sql.Composable] = [sql.SQL("(%(include_replayed)s OR replayed_at IS NULL)")]
    params: dict[str, Any] = {"include_replayed": include_replayed, "limit": max(limit, 0)}
    if filters.since is not None:
        conditions.append(sql.SQL("dead_lettered_at >= %(since)s"))
        params["since"] = filters.since
    if filters.until is not None:
        conditions.append(sql.SQL("dead_lettered_at < %(until)s"))
        params["until"] = filters.until
    for name, column in (
        ("error_classes", "error_class"),
        ("sources", "coalesce(source, '(none)')"),  # DeadLetter.source's "(none)"
        ("message_ids", "dead_letter_id"),
    ):
        values = getattr(filters, name)
        if values:
            conditions.append(sql.SQL(column + " = ANY(%(" + name + ")s)"))  # fixed names
            params[name] = sorted(values)
    for index, (key, values) in enumerate(sorted(filters.attributes.items())):
        conditions.append(
            sql.SQL("attributes->>{k} = ANY({v})").format(
                k=sql.Placeholder(f"attr_key_{index}"), v=sql.Placeholder(f"attr_values_{index}")
            )
        )
        params[f"attr_key_{index}"], params[f"attr_values_{index}"] = key, sorted(values)
    data = (
        sql.SQL("NULL::bytea")
        if data_bytes is None
        else sql.SQL("substring(data from 1 for {n})").format(n=sql.Literal(data_bytes))
    )
    query = sql.SQL(
        "SELECT dead_letter_id, dead_lettered_at, {data}, attributes FROM hookpipe.dead_letters "
        "WHERE {conditions} ORDER BY dead_lettered_at, dead_letter_id LIMIT %(limit)s"
    ).format(data=data, conditions=sql.SQL(" AND ").join(conditions))
    return query, params


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
    republisher: Republisher,
    letters: Sequence[DeadLetter],
    *,
    dry_run: bool,
    on_progress: Callable[[DeadLetter, str], None] | None = None,
) -> ArchiveReplay:
    summary = ArchiveReplay(selected=len(letters), letters=list(letters))
    if dry_run:
        return summary
    for listed in letters:
        republisher.wait_turn()
        # Listed with a preview of its data: the whole of it is read for its own publish only.
        (data,) = conn.execute(DATA_OF, (listed.message_id,)).fetchone()
        letter = replace(listed, data=bytes(data))
        try:
            republisher.republish(letter)
        except RepublishFailed as exc:  # counted and reported (exit 4); the row stays unreplayed
            summary.failed += 1
            if on_progress:
                on_progress(letter, f"not replayed: {exc}")
            continue
        conn.execute(MARK_REPLAYED, (republisher.now(), letter.message_id))
        conn.commit()
        summary.replayed += 1
        if on_progress:
            on_progress(letter, "replayed")
    return summary
