"""LeadProsper's public API as hookpipe reads it, and the events a lead becomes. Pure.

Every assumption about the API that no one has checked against a real account lives here, one
function each, so one look at a real account corrects it in one place (docs/reconcile.md,
"Assumptions", lists them):

* :func:`lead_key`: the API's lead ``id`` is the value a trigger sends as ``{{lp_request_uuid}}``;
* :func:`trigger_status`: the API's ``status`` is the value a trigger sends as ``{{lp_status}}``;
* :func:`is_returned`: ``returned`` is in list results, truthy for a returned lead;
* :func:`parse_page`: ``GET /leads`` answers ``{"leads": [...], "search_after": ...}``;
* :func:`api_time`: ``start_date``/``end_date`` take ``YYYY-MM-DD HH:MM:SS`` in ``timezone``;
* :func:`parse_stats`: ``GET /stats`` answers per campaign ``leads_total``, and per supplier
  ``leads_returned``;
* :func:`figures`: ``cost`` and ``revenue`` are decimal amounts (strings or numbers).

:func:`events_for` turns one API lead into the events a trigger would have sent: its current
status, and ``RETURNED`` when it was returned (no trigger fires on a return). Each gets the id
ingest gives that lead and status (the source's idempotency rule, one definition:
``hookpipe.event.idempotency_key``), so a late real webhook and the backfill land once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from hookpipe.event import RECONCILE, WebhookEvent, event_id, idempotency_key
from hookpipe.mapping import MappingError, convert
from hookpipe.sources import ColumnSpec, SourceConfig

from hookpipe_ops.errors import OperatorError

RETURNED = "RETURNED"
# Assumption (docs/reconcile.md): the values a Campaign Trigger sends as {{lp_status}}, the
# statuses LeadProsper's stats count (accepted, duplicated, failed), and our RETURNED. Used by
# `hookpipe trace` to find a lead's events by id where no sink holds them yet; a status missing
# here only means such an event is found by its own id, not by the lead's.
TRIGGER_STATUSES = ("ACCEPTED", "DUPLICATED", "ERROR", "FAILED", "REJECTED", "SOLD", RETURNED)
# A returned lead's RETURNED event is placed just after its status event of the same run, so
# current state shows RETURNED (both are "learnt now"; the status webhook, if it ever comes, was
# sent earlier).
RETURNED_AFTER = timedelta(milliseconds=1)


class ApiError(OperatorError):
    """LeadProsper's API answered something hookpipe cannot use (the message says what)."""


@dataclass(frozen=True, slots=True)
class Page:
    leads: list[dict[str, Any]]
    cursor: str | None  # None: the last page


def parse_page(document: object) -> Page:
    """``GET /leads``'s answer; raises :class:`ApiError` for anything else."""
    if not isinstance(document, dict) or not isinstance(document.get("leads"), list):
        raise ApiError("GET /leads did not answer {'leads': [...]}")
    leads = document["leads"]
    for lead in leads:
        if not isinstance(lead, dict) or not isinstance(lead.get("id"), str | int):
            raise ApiError("GET /leads answered a lead without an id")
    cursor = document.get("search_after")
    if cursor is not None and not isinstance(cursor, str | int):
        raise ApiError("GET /leads answered a search_after that is not a string")
    return Page(leads, str(cursor) if cursor not in (None, "") else None)


@dataclass(frozen=True, slots=True)
class Stats:
    """``GET /stats`` for one day: leads per campaign, and leads returned (None: not answered)."""

    leads: dict[str, int]
    returned: int | None


def _count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ApiError(f"GET /stats answered a count that is not a whole number: {value!r:.40}")
    return value


def parse_stats(document: object) -> Stats:
    """Assumption: ``{"campaigns": [{"id", "leads_total", ...}], "suppliers": [{"id",
    "leads_returned", ...}], ...}``; raises :class:`ApiError` for anything else."""
    if not isinstance(document, dict) or not isinstance(document.get("campaigns"), list):
        raise ApiError("GET /stats did not answer {'campaigns': [...]}")
    leads: dict[str, int] = {}
    for row in document["campaigns"]:
        if not isinstance(row, dict) or not isinstance(row.get("id"), str | int):
            raise ApiError("GET /stats answered a campaign without an id")
        leads[str(row["id"])] = leads.get(str(row["id"]), 0) + _count(row.get("leads_total"))
    suppliers = document.get("suppliers")
    returned = None
    if isinstance(suppliers, list) and all(
        isinstance(row, dict) and "leads_returned" in row for row in suppliers
    ):
        returned = sum(_count(row["leads_returned"]) for row in suppliers)
    return Stats(leads, returned)


@dataclass(frozen=True, slots=True)
class Ours:
    """What the sinks hold for one day, counted as :class:`Stats` counts it: leads the reconcile
    has checked against the API, per campaign, and those whose state is RETURNED."""

    leads: dict[str, int]
    returned: int


def campaigns_to_list(stats: Stats, ours: Ours) -> set[str]:
    """The campaigns whose day must be listed: LeadProsper counts other leads than we hold. A
    return moves no campaign's count, so returns that differ list every campaign of the day."""
    if stats.returned is None or stats.returned != ours.returned:
        return {c for c, n in stats.leads.items() if n}
    return {c for c, n in stats.leads.items() if n != ours.leads.get(c, 0)}


@dataclass(frozen=True, slots=True)
class Day:
    """One day of the window in the API's time zone, clipped to the window."""

    day: str  # ISO date
    start: datetime
    end: datetime


def days_of(start: datetime, end: datetime, timezone: str) -> Iterator[Day]:
    """``[start, end)`` cut at midnight in ``timezone`` (the unit of /stats and of checkpoints)."""
    zone = ZoneInfo(timezone)
    moment = start
    while moment < end:
        local = moment.astimezone(zone)
        next_day = local.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
        # Midnight of the next local date, whatever the day's length (DST).
        midnight = datetime.combine(next_day.date(), datetime.min.time(), zone).astimezone(UTC)
        yield Day(local.date().isoformat(), moment, min(midnight, end))
        moment = min(midnight, end)


_AMOUNT = ColumnSpec(field="cost", type="numeric")


def _amount(value: object) -> Decimal | None:
    try:
        amount = convert(_AMOUNT, value)
    except MappingError:
        return None
    return amount if isinstance(amount, Decimal) else None


@dataclass(frozen=True, slots=True)
class Figures:
    """What only the API knows about a lead, for its current-state row."""

    lead_id: str
    lead_date: datetime | None
    cost: Decimal | None  # None: absent, or not an amount both sinks hold
    revenue: Decimal | None
    returned: bool


def figures(lead: Mapping[str, Any]) -> Figures:
    """Assumption: ``cost`` and ``revenue`` are decimal amounts (strings or numbers)."""
    return Figures(
        lead_key(lead), lead_date(lead), _amount(lead.get("cost")), _amount(lead.get("revenue")),
        is_returned(lead),
    )  # fmt: skip


def lead_key(lead: Mapping[str, Any]) -> str:
    """Assumption: the API's ``id`` is what ``{{lp_request_uuid}}`` sends."""
    return str(lead["id"])


def trigger_status(lead: Mapping[str, Any]) -> str:
    """Assumption: the API's ``status`` is what ``{{lp_status}}`` sends."""
    return str(lead.get("status") or "")


def is_returned(lead: Mapping[str, Any]) -> bool:
    """Assumption: list results carry ``returned`` (truthy when a buyer returned the lead)."""
    return bool(lead.get("returned"))


def api_time(moment: datetime, timezone: str) -> str:
    """Assumption: the API's dates are ``YYYY-MM-DD HH:MM:SS`` in the configured time zone."""
    return moment.astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M:%S")


def lead_date(lead: Mapping[str, Any]) -> datetime | None:
    value = lead.get("lead_date_ms")
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    try:
        return datetime.fromtimestamp(value / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def trigger_payload(lead: Mapping[str, Any], status: str, at: datetime) -> dict[str, Any]:
    """The body a Campaign Trigger built from docs/deploy.md's template would have sent for
    ``lead`` in ``status``: the system shortcodes, then the campaign's own fields; what only the
    API knows (cost, revenue, buyers, the return) under ``lp_api``, since no shortcode carries it.
    ``at``: when hookpipe learnt it (the version current state orders by)."""
    date = lead_date(lead)
    supplier = lead.get("supplier")
    fields = lead.get("lead_data")
    payload: dict[str, Any] = {
        str(k): v
        for k, v in (fields.items() if isinstance(fields, dict) else ())
        if not str(k).startswith("lp_")
    }
    payload.update(
        {
            "lp_request_uuid": lead_key(lead),
            "lp_status": status,
            "lp_campaign_id": str(lead.get("campaign_id") or ""),
            "lp_supplier_id": str(supplier.get("id", "")) if isinstance(supplier, dict) else "",
            "lp_lead_date_utc": date.strftime("%Y-%m-%d %H:%M:%S") if date else "",
            "lp_timestamp": at.isoformat(),
            "lp_api": {
                "campaign_name": lead.get("campaign_name"),
                "cost": lead.get("cost"),
                "revenue": lead.get("revenue"),
                "returned": is_returned(lead),
                "return_reason": lead.get("return_reason"),
                "buyers": lead.get("buyers") or [],
                "test": lead.get("test"),
            },
        }
    )
    return payload


def events_for(
    lead: Mapping[str, Any], source: str, config: SourceConfig, now: datetime
) -> list[WebhookEvent]:
    """The events ``lead`` stands for, as ingest would have published them (same ids), marked as
    reconciled; none for a lead with no status."""
    status = trigger_status(lead)
    if not status:
        return []
    wanted = [(status, now)]
    if is_returned(lead) and status != RETURNED:
        wanted.append((RETURNED, now + RETURNED_AFTER))
    events = []
    for event_status, at in wanted:
        body = json.dumps(trigger_payload(lead, event_status, at), separators=(",", ":")).encode()
        payload = json.loads(body)
        key = idempotency_key(config.idempotency, {}, payload, body)
        events.append(
            WebhookEvent(
                id=event_id(source, key),
                source=source,
                type=config.event_type,
                time=now,
                content_type="application/json",
                data=body,
                origin=RECONCILE,
            )
        )
    return events


def day_of(lead: Mapping[str, Any], timezone: str) -> str:
    """The lead's day in the report (its lead date, in the configured time zone)."""
    date = lead_date(lead)
    return date.astimezone(ZoneInfo(timezone)).date().isoformat() if date else "(no date)"


def campaign_of(lead: Mapping[str, Any]) -> str:
    return str(lead.get("campaign_id") or "(none)")


def summary_key(lead: Mapping[str, Any], timezone: str) -> tuple[str, str]:
    return campaign_of(lead), day_of(lead, timezone)
