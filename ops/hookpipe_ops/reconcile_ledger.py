"""What ``hookpipe reconcile`` keeps and reads in Postgres: the ledger and the lease.

* :class:`PostgresLedger`: which event ids landed (``hookpipe.events``), what a day holds (the
  source's current-state table, counted as ``GET /stats`` counts), the API's figures for each lead
  it listed (cost, revenue, lead date, returned: columns of the current-state table that only the
  reconcile writes), and the checkpoints (``hookpipe.reconcile_checkpoints``).
* :class:`Lease`: one run at a time per source (``hookpipe.reconcile_leases``; Supabase's
  transaction pooler has no session advisory locks, ../shared/platform-notes.md).

Every statement takes a whole page or day in one round trip, never one a lead. The connection is
in autocommit: each write stands on its own, so a killed run keeps what it wrote.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import sql

from hookpipe_ops.errors import OperatorError
from hookpipe_ops.leadprosper import RETURNED, Day, Figures, Ours

PRESENT_QUERY = "SELECT event_id FROM hookpipe.events WHERE event_id = ANY(%s)"

# A day's leads as /stats counts them: those the reconcile checked against the API (it alone
# writes lead_date), per campaign, and those whose state is RETURNED.
_OURS = """
SELECT coalesce(campaign_id, ''), count(*), count(*) FILTER (WHERE status = {returned})
FROM {table} WHERE lead_date >= %s AND lead_date < %s GROUP BY 1
"""
_RECORD = """
UPDATE {table} AS l
SET cost = v.cost, revenue = v.revenue, lead_date = v.lead_date, returned = v.returned,
    checked_at = now()
FROM unnest(%s::text[], %s::timestamptz[], %s::numeric[], %s::numeric[], %s::boolean[])
     AS v(key, lead_date, cost, revenue, returned)
WHERE l.{key} = v.key
"""
_CHECKPOINTED = """
SELECT campaign FROM hookpipe.reconcile_checkpoints
WHERE source = %s AND day = %s AND through >= %s AND finished_at >= %s
"""
_CHECKPOINT = """
INSERT INTO hookpipe.reconcile_checkpoints AS c (source, day, campaign, through, finished_at)
SELECT %s, %s, unnest(%s::text[]), %s, now()
ON CONFLICT (source, day, campaign) DO UPDATE
SET through = EXCLUDED.through, finished_at = EXCLUDED.finished_at
"""


@dataclass
class PostgresLedger:
    conn: Any  # a psycopg connection in autocommit
    source: str
    table: str  # the source's current-state table, "schema.name"
    key: str  # its key column

    def __post_init__(self) -> None:
        schema, name = self.table.split(".")
        names = {"table": sql.Identifier(schema, name), "key": sql.Identifier(self.key)}
        self._ours = sql.SQL(_OURS).format(returned=sql.Literal(RETURNED), **names)
        self._record = sql.SQL(_RECORD).format(**names)

    def present(self, event_ids: Sequence[str]) -> set[str]:
        rows = self.conn.execute(PRESENT_QUERY, (list(event_ids),)).fetchall()
        return {str(r[0]) for r in rows}

    def ours(self, day: Day) -> Ours:
        rows = self.conn.execute(self._ours, (day.start, day.end)).fetchall()
        return Ours({str(c): int(n) for c, n, _ in rows}, sum(int(r) for _, _, r in rows))

    def record(self, figures: Sequence[Figures]) -> None:
        columns = (
            [f.lead_id for f in figures],
            [f.lead_date for f in figures],
            [f.cost for f in figures],
            [f.revenue for f in figures],
            [f.returned for f in figures],
        )
        self.conn.execute(self._record, columns)

    def checkpointed(self, day: Day, since: datetime) -> set[str]:
        rows = self.conn.execute(_CHECKPOINTED, (self.source, day.day, day.end, since)).fetchall()
        return {str(r[0]) for r in rows}

    def checkpoint(self, day: Day, campaigns: Iterable[str]) -> None:
        self.conn.execute(_CHECKPOINT, (self.source, day.day, sorted(campaigns), day.end))


# The lease (infra/supabase/migrations/*_reconcile_leases.sql): taken when free or expired.
TAKE_LEASE = """
INSERT INTO hookpipe.reconcile_leases AS l (name, holder, expires_at)
VALUES (%(name)s, %(holder)s, now() + %(ttl)s * interval '1 second')
ON CONFLICT (name) DO UPDATE
SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at, acquired_at = now()
WHERE l.expires_at < now() OR l.holder = EXCLUDED.holder
RETURNING holder
"""
RENEW_LEASE = """
UPDATE hookpipe.reconcile_leases SET expires_at = now() + %(ttl)s * interval '1 second'
WHERE name = %(name)s AND holder = %(holder)s
"""
GIVE_BACK_LEASE = (
    "DELETE FROM hookpipe.reconcile_leases WHERE name = %(name)s AND holder = %(holder)s"
)
HELD_BY = "SELECT holder, expires_at FROM hookpipe.reconcile_leases WHERE name = %(name)s"
# Long enough for a page and its publishes; renewed after each page.
LEASE_SECONDS = 600


class LeaseHeld(OperatorError):
    """Another run holds the lease: this one does nothing (exit 6)."""


@dataclass
class Lease:
    """One run at a time per source, in Postgres (autocommit connection)."""

    conn: Any
    name: str
    holder: str
    ttl: int = LEASE_SECONDS

    def take(self) -> None:
        params = {"name": self.name, "holder": self.holder, "ttl": self.ttl}
        if self.conn.execute(TAKE_LEASE, params).fetchone() is None:
            held = self.conn.execute(HELD_BY, params).fetchone()
            who, until = held if held else ("another run", None)
            raise LeaseHeld(f"{who} holds {self.name} until {until}: another reconcile is running")

    def renew(self) -> None:
        self.conn.execute(RENEW_LEASE, {"name": self.name, "holder": self.holder, "ttl": self.ttl})

    def give_back(self) -> None:
        self.conn.execute(GIVE_BACK_LEASE, {"name": self.name, "holder": self.holder})
