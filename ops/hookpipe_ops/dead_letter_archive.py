"""The dead-letter archive (``hookpipe.dead_letters`` in Postgres) as operators look at it. The
worker writes it; here it is read, and replayed from when Pub/Sub's 7-day retention has already
dropped a dead letter.

A replay from the archive is the same loop as a live one (:func:`hookpipe_ops.replay.replay`:
paced, the same attributes, confirmed, one audit line each); the row is stamped ``replayed_at``
after. Event ids are idempotent, so replaying one twice (a run killed before the stamp, or
``--include-replayed``) still lands it once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime
from typing import Any

from hookpipe.deadletters import DeadLetter
from psycopg import sql

from hookpipe_ops.deadletters import Filters

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


class ArchivedLetters:
    """The archive as a :class:`~hookpipe_ops.replay.ReplaySource`: the first ``limit`` rows
    ``filters`` select, listed with a preview of their data; each one's whole data is read for
    its own publish only, and its row stamped ``replayed_at`` once that publish is confirmed."""

    def __init__(
        self,
        conn: Any,
        filters: Filters,
        *,
        include_replayed: bool,
        limit: int,
        now: Callable[[], datetime],
    ) -> None:
        self._conn = conn
        self._now = now
        self._letters = archived(conn, filters, include_replayed=include_replayed, limit=limit)
        self.scanned = len(self._letters)

    def __iter__(self) -> Iterator[DeadLetter]:
        return iter(self._letters)

    def keep_holding(self) -> None:
        pass  # nothing holds a row: another replay of it lands once all the same

    def whole(self, letter: DeadLetter) -> DeadLetter:
        (data,) = self._conn.execute(DATA_OF, (letter.message_id,)).fetchone()
        return replace(letter, data=bytes(data))

    def replayed(self, letter: DeadLetter) -> None:
        self._conn.execute(MARK_REPLAYED, (self._now(), letter.message_id))
        self._conn.commit()

    def release(self) -> None:
        pass
