"""``hookpipe reconcile``: every lead the sender's API recorded ends up in both sinks.

One run over a window, a day at a time (in the API's time zone, :func:`days_of`):

1. a day a run finished listing lately (a checkpoint younger than ``resume_minutes``) is skipped:
   a killed run, run again, resumes where it stopped;
2. ``GET /stats`` for the day: campaigns whose count agrees with ours (leads the reconcile checked
   against the API, and the day's returns) are not listed. Only an optimisation: when its answer
   cannot be read, every campaign of the day is listed;
3. the other campaigns are listed (``GET /leads``, page by page); each lead becomes the events a
   trigger would have sent (``hookpipe_ops.leadprosper.events_for``: same ids as ingest's); one
   query a page asks which landed, the others are published to the events topic, marked
   ``origin = reconcile``, a page's together, each confirmed by Pub/Sub. The worker lands them
   as any event; a second run, or a late real webhook, finds them there (same id) and adds
   nothing;
4. the page's cost, revenue, lead date and return go to the leads' current-state rows (one
   statement a page; a lead published in this page gets its figures from the next run);
5. the day's checkpoint is written once its listing reached the end.

``dry_run`` publishes and writes nothing. Postgres stands for both sinks: the worker commits an
event to both or to neither (a row one sink refuses is dead-lettered and archived,
docs/delivery.md). The ports are :class:`Ledger` and :class:`Publish`; the adapters,
``hookpipe_ops.reconcile_ledger`` and the CLI's publisher.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from hookpipe.errors import error_class
from hookpipe.event import WebhookEvent, to_message
from hookpipe.sources import SourceConfig

from hookpipe_ops.errors import OperatorError
from hookpipe_ops.leadprosper import (
    ApiError,
    Day,
    Figures,
    Ours,
    Page,
    Stats,
    campaign_of,
    campaigns_to_list,
    days_of,
    events_for,
    figures,
    is_returned,
)

# Publish messages (data, attributes) and wait for Pub/Sub's confirmation of each: per message,
# None when confirmed, else why not.
type Publish = Callable[[Sequence[tuple[bytes, dict[str, str]]]], list[BaseException | None]]

WHOLE_DAY = "*"  # a checkpoint for every campaign of its day


class Ledger(Protocol):
    """What the reconcile reads from and writes to the sinks' side (one call a page or day)."""

    def present(self, event_ids: Sequence[str]) -> set[str]: ...
    def ours(self, day: Day) -> Ours: ...
    def record(self, figures: Sequence[Figures]) -> None: ...
    def checkpointed(self, day: Day, since: datetime) -> set[str]: ...
    def checkpoint(self, day: Day, campaigns: Iterable[str]) -> None: ...


class Api(Protocol):
    requests_made: int

    def stats(
        self, start: datetime, end: datetime, *, campaigns: tuple[str, ...] = ()
    ) -> Stats: ...
    def leads(
        self, start: datetime, end: datetime, *, campaigns: tuple[str, ...] = (), max_pages: int
    ) -> Iterable[Page]: ...


class PublishFailed(OperatorError):
    """Pub/Sub did not confirm a backfilled event: the run stops, the window is not finished."""


def describe(exc: BaseException) -> str:
    return f"{error_class(exc)}: {str(exc)[:200]}".rstrip(": ")


@dataclass
class DayCount:
    """One campaign's day: what LeadProsper has, what we had, what this run added."""

    leads: int = 0  # leads LeadProsper has
    events: int = 0  # events the listed ones stand for (a returned lead is two)
    present: int = 0  # listed: events already in the sinks; not listed: our leads
    backfilled: int = 0  # published by this run (dry run: would be)
    returned: int = 0  # listed leads returned
    checked: str = "listed"  # or "counts agree", "checkpoint" (not listed)


@dataclass
class ReconcileReport:
    source: str
    start: datetime
    end: datetime
    dry_run: bool
    days: dict[tuple[str, str], DayCount] = field(default_factory=dict)
    requests: int = 0
    pages: int = 0
    published_ids: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the run could not use, and did anyway
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
            "pages": self.pages,
            "backfilled": self.backfilled,
            "published": self.published_ids,
            "notes": self.notes,
            "days": [
                {"campaign": campaign, "day": day, **vars(count)}
                for (campaign, day), count in sorted(self.days.items())
            ],
        }


@dataclass
class _Run:
    api: Api
    source: str
    config: SourceConfig
    ledger: Ledger
    publish: Publish
    now: Callable[[], datetime]
    dry_run: bool
    resume: bool
    on_page: Callable[[], None]
    report: ReconcileReport

    def day(self, day: Day, campaigns: tuple[str, ...]) -> None:
        assert self.config.reconcile is not None
        since = self.now() - timedelta(minutes=self.config.reconcile.resume_minutes)
        done = self.ledger.checkpointed(day, since) if self.resume else set()
        if WHOLE_DAY in done or (campaigns and done >= set(campaigns)):
            self.report.days[(WHOLE_DAY, day.day)] = DayCount(checked="checkpoint")
            return
        listing: tuple[str, ...] = campaigns
        try:
            stats = self.api.stats(day.start, day.end, campaigns=campaigns)
        except ApiError as exc:  # an optimisation only: list every campaign of the day
            self.report.notes.append(f"{day.day}: /stats not used ({exc}); listed the whole day")
        else:
            ours = self.ledger.ours(day)
            wanted = campaigns_to_list(stats, ours) - done
            if campaigns:
                wanted &= set(campaigns)
            for campaign, leads in stats.leads.items():
                if campaign not in wanted and (not campaigns or campaign in campaigns):
                    checked = "checkpoint" if campaign in done else "counts agree"
                    self.report.days[(campaign, day.day)] = DayCount(
                        leads=leads, present=ours.leads.get(campaign, 0), checked=checked
                    )
            if not wanted:
                return
            listing = tuple(sorted(wanted))
        for page in self.api.leads(
            day.start, day.end, campaigns=listing, max_pages=self.pages_left()
        ):
            self.page(page, day)
        if not self.dry_run:
            self.ledger.checkpoint(day, listing or (WHOLE_DAY,))

    def pages_left(self) -> int:
        assert self.config.reconcile is not None
        left = self.config.reconcile.max_pages - self.report.pages
        if left <= 0:
            raise ApiError(f"more than {self.config.reconcile.max_pages} pages (max_pages)")
        return left

    def page(self, page: Page, day: Day) -> None:
        self.report.pages += 1
        moment = self.now()
        per_lead = [
            (lead, events_for(lead, self.source, self.config, moment)) for lead in page.leads
        ]
        ids = [event.id for _, events in per_lead for event in events]
        present = self.ledger.present(ids) if ids else set()
        missing: list[tuple[WebhookEvent, DayCount]] = []
        for lead, events in per_lead:
            count = self.report.days.setdefault((campaign_of(lead), day.day), DayCount())
            count.leads += 1
            count.events += len(events)
            count.returned += is_returned(lead)
            count.present += sum(event.id in present for event in events)
            missing += [(event, count) for event in events if event.id not in present]
        if self.dry_run:
            for _, count in missing:
                count.backfilled += 1
        elif missing:
            # A page's publishes in flight together, each confirmed before the page is done.
            outcomes = self.publish([to_message(event) for event, _ in missing])
            for (event, count), failure in zip(missing, outcomes, strict=True):
                if failure is None:
                    self.report.published_ids.append(event.id)
                    count.backfilled += 1
            failed = [(e, f) for (e, _), f in zip(missing, outcomes, strict=True) if f is not None]
            if failed:  # the run stops; what it published stays
                event, failure = failed[0]
                raise PublishFailed(
                    f"publishing {event.id}: {describe(failure)} ({len(failed)} not confirmed)"
                )
        if not self.dry_run and page.leads:
            self.ledger.record([figures(lead) for lead in page.leads])
        self.on_page()


def reconcile(
    api: Api,
    source: str,
    config: SourceConfig,
    *,
    start: datetime,
    end: datetime,
    campaigns: tuple[str, ...],
    ledger: Ledger,
    publish: Publish,
    now: Callable[[], datetime],
    dry_run: bool,
    resume: bool = True,
    on_page: Callable[[], None] = lambda: None,
) -> ReconcileReport:
    """One run over ``[start, end)``. When the API fails it (``ApiError``), the report says so
    (``error``) with what was published so far, which stays published: the next run finds it."""
    assert config.reconcile is not None
    report = ReconcileReport(source, start, end, dry_run)
    run = _Run(api, source, config, ledger, publish, now, dry_run, resume, on_page, report)
    try:
        for day in days_of(start, end, config.reconcile.timezone):
            run.day(day, campaigns)
    except (ApiError, PublishFailed) as exc:
        report.error = str(exc)
    finally:
        report.requests = api.requests_made
    return report
