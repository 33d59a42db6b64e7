"""``hookpipe reconcile``: every lead the sender's API recorded ends up in both sinks.

One run over a window: page through ``GET /leads`` (``hookpipe_ops.leadprosper_api``), turn each
lead into the events a trigger would have sent (``hookpipe_ops.leadprosper.events_for``: same ids
as ingest's), ask Postgres which of a page's event ids it has (one query a page, never one a lead),
and publish the others to the events topic, marked ``origin = reconcile``, waiting for Pub/Sub's
confirmation. The worker lands them as any event; a second run, or a late real webhook, finds
them there (same id) and adds nothing. ``dry_run`` publishes nothing.

Postgres stands for both sinks here: the worker commits an event to both or to neither (a row one
sink refuses is dead-lettered and archived, docs/delivery.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hookpipe.event import to_message
from hookpipe.sources import SourceConfig

from hookpipe_ops.errors import OperatorError
from hookpipe_ops.leadprosper import ApiError, events_for, is_returned, summary_key
from hookpipe_ops.leadprosper_api import LeadProsperApi

# Publish one event and wait for Pub/Sub's confirmation (raises if it did not confirm).
type Publish = Callable[[bytes, dict[str, str]], None]
# Which of these event ids the sinks already hold.
type Stored = Callable[[Sequence[str]], set[str]]

PRESENT_QUERY = "SELECT event_id FROM hookpipe.events WHERE event_id = ANY(%s)"

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


class PublishFailed(OperatorError):
    """Pub/Sub did not confirm a backfilled event: the run stops, the window is not finished."""


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:200]}".rstrip(": ")


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


@dataclass
class DayCount:
    """One campaign's day: what LeadProsper has, what we had, what this run added."""

    leads: int = 0  # leads LeadProsper lists
    events: int = 0  # events they stand for (a returned lead is two)
    present: int = 0  # already in the sinks
    backfilled: int = 0  # published by this run (dry run: would be)
    returned: int = 0  # leads returned


@dataclass
class ReconcileReport:
    source: str
    start: datetime
    end: datetime
    dry_run: bool
    days: dict[tuple[str, str], DayCount] = field(default_factory=dict)
    requests: int = 0
    published_ids: list[str] = field(default_factory=list)
    error: str | None = None  # why the window was not finished; None: it was

    @property
    def finished(self) -> bool:
        return self.error is None

    @property
    def backfilled(self) -> int:
        return sum(d.backfilled for d in self.days.values())

    def as_dict(self) -> dict[str, Any]:
        """What ``--json`` prints (field names in docs/reconcile.md)."""
        return {
            "source": self.source,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "dry_run": self.dry_run,
            "finished": self.finished,
            "error": self.error,
            "requests": self.requests,
            "backfilled": self.backfilled,
            "published": self.published_ids,
            "days": [
                {"campaign": campaign, "day": day, **vars(count)}
                for (campaign, day), count in sorted(self.days.items())
            ],
        }


def stored_in_postgres(conn: Any) -> Stored:
    def stored(event_ids: Sequence[str]) -> set[str]:
        rows = conn.execute(PRESENT_QUERY, (list(event_ids),)).fetchall()
        return {str(r[0]) for r in rows}

    return stored


def reconcile(
    api: LeadProsperApi,
    source: str,
    config: SourceConfig,
    *,
    start: datetime,
    end: datetime,
    campaigns: tuple[str, ...],
    stored: Stored,
    publish: Publish,
    now: Callable[[], datetime],
    dry_run: bool,
    on_page: Callable[[], None] = lambda: None,
) -> ReconcileReport:
    """One run over ``[start, end)``. When the API fails it (``ApiError``), the report says so
    (``error``) with what was published so far, which stays published: the next run finds it."""
    assert config.reconcile is not None
    timezone = config.reconcile.timezone
    report = ReconcileReport(source, start, end, dry_run)
    try:
        for page in api.leads(
            start, end, campaigns=campaigns, max_pages=config.reconcile.max_pages
        ):
            moment = now()
            per_lead = [(lead, events_for(lead, source, config, moment)) for lead in page.leads]
            ids = [event.id for _, events in per_lead for event in events]
            present = stored(ids) if ids else set()
            for lead, events in per_lead:
                count = report.days.setdefault(summary_key(lead, timezone), DayCount())
                count.leads += 1
                count.events += len(events)
                count.returned += is_returned(lead)
                for event in events:
                    if event.id in present:
                        count.present += 1
                        continue
                    if not dry_run:
                        data, attributes = to_message(event)
                        try:
                            publish(data, attributes)
                        except Exception as exc:  # the run stops; what it published stays
                            raise PublishFailed(f"publishing {event.id}: {describe(exc)}") from exc
                        report.published_ids.append(event.id)
                    count.backfilled += 1
            on_page()
    except (ApiError, PublishFailed) as exc:
        report.error = str(exc)
    finally:
        report.requests = api.requests_made
    return report
