"""One reconcile run, day by day, against a fake API and a fake ledger (the ports of
``hookpipe_ops.reconcile``; the real adapters run in tests/e2e/test_reconcile.py): which days it
lists, what it skips and why, what it writes; and the pure pieces it decides with."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hookpipe.sources import load_source_configs
from hookpipe_ops.leadprosper import (
    ApiError,
    Day,
    Figures,
    Ours,
    Page,
    Stats,
    campaigns_to_list,
    days_of,
    figures,
    parse_stats,
)
from hookpipe_ops.reconcile import WHOLE_DAY, reconcile

REPO = Path(__file__).resolve().parents[2]
CONFIG = load_source_configs(REPO / "infra/sources.toml")["leadprosper"]
START = datetime(2026, 11, 1, tzinfo=UTC)
NOW = START + timedelta(days=3)


@dataclass
class FakeLedger:
    """In memory: landed event ids, our counts per day, figures and checkpoints written."""

    landed: set[str] = field(default_factory=set)
    counts: dict[str, Ours] = field(default_factory=dict)
    recorded: list[Figures] = field(default_factory=list)
    checkpoints: dict[tuple[str, str], datetime] = field(default_factory=dict)

    def present(self, event_ids: Sequence[str]) -> set[str]:
        return self.landed & set(event_ids)

    def ours(self, day: Day) -> Ours:
        return self.counts.get(day.day, Ours({}, 0))

    def record(self, figures: Sequence[Figures]) -> None:
        self.recorded.extend(figures)

    def checkpointed(self, day: Day, since: datetime) -> set[str]:
        return {c for (d, c), at in self.checkpoints.items() if d == day.day and at >= since}

    def checkpoint(self, day: Day, campaigns: Iterable[str]) -> None:
        for campaign in campaigns:
            self.checkpoints[(day.day, campaign)] = NOW


@dataclass
class FakeApi:
    leads_by_day: dict[str, list[dict[str, Any]]]
    stats_by_day: dict[str, object] = field(default_factory=dict)  # absent: computed; an
    requests_made: int = 0  # exception instance: raised
    listed: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)

    def stats(self, start: datetime, end: datetime, *, campaigns: tuple[str, ...] = ()) -> Stats:
        self.requests_made += 1
        day = start.date().isoformat()
        answer = self.stats_by_day.get(day)
        if isinstance(answer, Exception):
            raise answer
        if answer is not None:
            return parse_stats(answer)
        leads: dict[str, int] = {}
        for lead in self.leads_by_day.get(day, []):
            leads[str(lead["campaign_id"])] = leads.get(str(lead["campaign_id"]), 0) + 1
        returned = sum(bool(lead.get("returned")) for lead in self.leads_by_day.get(day, []))
        return Stats(leads, returned)

    def leads(
        self, start: datetime, end: datetime, *, campaigns: tuple[str, ...] = (), max_pages: int
    ) -> Iterator[Page]:
        day = start.date().isoformat()
        self.listed.append((day, campaigns))
        self.requests_made += 1
        yield Page(
            [
                lead
                for lead in self.leads_by_day.get(day, [])
                if not campaigns or str(lead["campaign_id"]) in campaigns
            ],
            None,
        )


def lead(n: int, day: int, campaign: int, **fields: Any) -> dict[str, Any]:
    at = START + timedelta(days=day, hours=1, minutes=n)
    return {"id": f"lead-{day}-{n}", "lead_date_ms": int(at.timestamp() * 1000),
            "status": "ACCEPTED", "campaign_id": campaign, "cost": "1.5", "revenue": "7.25",
            **fields}  # fmt: skip


def run(api: FakeApi, ledger: FakeLedger, **options: Any) -> Any:
    published: list[str] = []
    report = reconcile(
        api, "leadprosper", CONFIG, start=START, end=START + timedelta(days=2),
        campaigns=options.pop("campaigns", ()), ledger=ledger,
        publish=lambda messages: [published.append(attrs["ce-id"]) for _, attrs in messages],
        now=lambda: NOW, dry_run=options.pop("dry_run", False), **options,
    )  # fmt: skip
    assert report.published_ids == published
    return report


def test_days_whose_counts_agree_are_not_listed_the_others_only_for_their_campaigns() -> None:
    api = FakeApi({"2026-11-01": [lead(1, 0, 7), lead(2, 0, 8)], "2026-11-02": [lead(3, 1, 7)]})
    ledger = FakeLedger(counts={"2026-11-01": Ours({"7": 1}, 0), "2026-11-02": Ours({"7": 1}, 0)})
    report = run(api, ledger)
    assert api.listed == [("2026-11-01", ("8",))]  # campaign 7 agrees on both days
    assert report.finished
    assert report.backfilled == 1
    assert report.requests == 3
    checked = {key: count.checked for key, count in report.days.items()}
    assert checked == {("7", "2026-11-01"): "counts agree", ("8", "2026-11-01"): "listed",
                       ("7", "2026-11-02"): "counts agree"}  # fmt: skip
    assert [f.lead_id for f in ledger.recorded] == ["lead-0-2"]
    assert set(ledger.checkpoints) == {("2026-11-01", "8")}


def test_returns_that_differ_list_every_campaign_of_their_day() -> None:
    api = FakeApi({"2026-11-01": [lead(1, 0, 7, returned=True), lead(2, 0, 8)]})
    ledger = FakeLedger(counts={"2026-11-01": Ours({"7": 1, "8": 1}, 0)})
    report = run(api, ledger)
    assert api.listed == [("2026-11-01", ("7", "8"))]
    assert report.backfilled == 3  # both status events and the RETURNED one


def test_unreadable_stats_list_the_whole_day_and_say_so() -> None:
    api = FakeApi(
        {"2026-11-01": [lead(1, 0, 7)]},
        stats_by_day={"2026-11-01": ApiError("GET /stats: 503, 4 tries"), "2026-11-02": [1]},
    )
    report = run(api, FakeLedger(counts={"2026-11-01": Ours({"7": 1}, 0)}))
    assert api.listed == [("2026-11-01", ()), ("2026-11-02", ())]
    assert report.finished
    assert report.backfilled == 1
    assert len(report.notes) == 2
    assert "503, 4 tries" in report.notes[0]


def test_a_day_a_run_finished_lately_is_skipped_unless_told_and_dry_runs_write_nothing() -> None:
    api = FakeApi({"2026-11-01": [lead(1, 0, 7)], "2026-11-02": [lead(2, 1, 7)]})
    ledger = FakeLedger()
    run(api, ledger, dry_run=True)
    assert not ledger.checkpoints
    assert not ledger.recorded
    first = run(api, ledger)
    assert set(ledger.checkpoints) == {("2026-11-01", "7"), ("2026-11-02", "7")}
    ledger.landed |= set(first.published_ids)
    api.listed.clear()
    again = run(api, ledger)
    assert api.listed == []
    assert again.requests == first.requests + 2
    assert {c.checked for c in again.days.values()} == {"checkpoint"}
    ledger.checkpoints = {k: NOW - timedelta(minutes=31) for k in ledger.checkpoints}
    later = run(api, ledger)  # an hour later: listed again (returns appear after the fact)
    assert [day for day, _ in api.listed] == ["2026-11-01", "2026-11-02"]
    assert later.backfilled == 0
    api.listed.clear()
    ledger.checkpoints[("2026-11-01", WHOLE_DAY)] = NOW
    run(api, ledger, resume=False)
    assert [day for day, _ in api.listed] == ["2026-11-01", "2026-11-02"]


def test_days_are_cut_at_midnight_in_the_time_zone_whatever_their_length() -> None:
    start = datetime(2026, 3, 7, 12, tzinfo=UTC)
    days = list(days_of(start, start + timedelta(days=2), "America/New_York"))
    assert [d.day for d in days] == ["2026-03-07", "2026-03-08", "2026-03-09"]
    assert days[1].end - days[1].start == timedelta(hours=23)  # clocks go forward that night
    assert days[0].start == start
    assert days[-1].end == start + timedelta(days=2)
    assert all(a.end == b.start for a, b in itertools.pairwise(days))


@pytest.mark.parametrize(
    "document",
    [None, {"campaigns": "x"}, {"campaigns": [{"leads_total": 1}]},
     {"campaigns": [{"id": 1, "leads_total": -1}]}, {"campaigns": [{"id": 1, "leads_total": True}]},
     {"campaigns": [{"id": 1, "leads_total": "3"}]}],
)  # fmt: skip
def test_stats_that_are_not_counts_are_an_api_error(document: object) -> None:
    with pytest.raises(ApiError):
        parse_stats(document)


def test_stats_without_returned_counts_list_every_campaign_with_leads() -> None:
    stats = parse_stats({"campaigns": [{"id": 7, "leads_total": 2}, {"id": 8, "leads_total": 0}]})
    assert stats.returned is None
    assert campaigns_to_list(stats, Ours({"7": 2}, 0)) == {"7"}
    counted = parse_stats({"campaigns": [{"id": 7, "leads_total": 2}],
                           "suppliers": [{"id": 1, "leads_returned": 1}]})  # fmt: skip
    assert campaigns_to_list(counted, Ours({"7": 2}, 1)) == set()


def test_figures_keep_only_amounts_both_sinks_hold() -> None:
    got = figures({"id": "x", "cost": "1.50", "revenue": "1E+40", "returned": 1})
    assert (got.cost, got.revenue, got.returned, got.lead_date) == (Decimal("1.50"), None, True,
                                                                    None)  # fmt: skip
    assert figures({"id": "x", "cost": ["1"], "revenue": "NaN"}).cost is None
