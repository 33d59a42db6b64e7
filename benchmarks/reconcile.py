"""`make bench-reconcile`: `hookpipe reconcile leadprosper` over a busy day, on the local stack.

The LeadProsper stand-in holds two days of 10,000 leads each (five campaigns); the sinks already
hold every lead's event but:

* **day A**: 1% of the leads never reached us (their events are missing), and no run has looked
  at the day yet (no lead has the API's figures): the day must be listed, page by page;
* **day B**: every lead is there and was checked by an earlier run (figures written): `/stats`
  agrees, nothing needs listing. Listed anyway (the run with `/stats` unreadable, the same
  requests a run without the optimisation makes) as the baseline, in the same run.

Each run is the CLI in a process of its own, as the job runs it, against the stand-in's limit of
100 requests a minute at the source's configured share. For each: API requests used against the
pages needed (ceil(leads / 100)), wall time against the rate limit's floor (pages needed at the
configured rate), and the CLI's own CPU time (user + system), whole and per lead. Targets
(issue 18): requests <= 1.05 x pages needed; own CPU under 10% of the floor.

Prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
from hookpipe.sources import load_source_configs
from hookpipe_devstack.stack import Stack
from hookpipe_ops.leadprosper import events_for

REPO = Path(__file__).resolve().parents[1]
HOOKPIPE = REPO / ".venv/bin/hookpipe"
LEADS_A_DAY = 10_000
MISSING_EVERY = 100  # 1%
CAMPAIGNS = 5
PAGE_SIZE = 100  # the API's
DAY_A = datetime(2026, 6, 1, tzinfo=UTC)
DAY_B = DAY_A + timedelta(days=1)


def leads_of(day: datetime, tag: str) -> list[dict[str, Any]]:
    spacing = timedelta(days=1) / LEADS_A_DAY
    return [
        {
            "id": f"{tag}-{n:06d}",
            "lead_date_ms": int((day + n * spacing).timestamp() * 1000),
            "status": "ACCEPTED",
            "test": False,
            "cost": "1.50",
            "revenue": "7.25",
            "campaign_id": 100 + n % CAMPAIGNS,
            "campaign_name": f"Campaign {100 + n % CAMPAIGNS}",
            "returned": False,
            "return_reason": None,
            "lead_data": {"email": f"lead{n}@example.com", "first_name": "Ada", "phone": "555"},
            "supplier": {"id": 77, "name": "Supplier"},
            "buyers": [{"id": 5, "name": "Buyer", "status": "SOLD", "sell_price": "7.25"}],
        }
        for n in range(LEADS_A_DAY)
    ]


def seed(
    url: str, leads: list[dict[str, Any]], *, missing_every: int | None, checked: bool
) -> None:
    """The sinks' side as webhooks would have left it: each present lead's event in
    hookpipe.events and its current-state row (with the API's figures when ``checked``)."""
    config = load_source_configs(REPO / "infra/sources.toml")["leadprosper"]
    now = datetime.now(UTC)
    with psycopg.connect(url, autocommit=True) as conn, conn.cursor() as cursor:
        with cursor.copy(
            "COPY hookpipe.events (event_id, source, event_type, received_at, payload) FROM STDIN"
        ) as copy:
            states = []
            for n, lead in enumerate(leads):
                if missing_every and n % missing_every == 0:
                    continue
                [event] = events_for(lead, "leadprosper", config, now)
                copy.write_row((event.id, "leadprosper", event.type, now, event.data.decode()))
                date = datetime.fromtimestamp(lead["lead_date_ms"] / 1000, UTC)
                states.append((lead["id"], event.id, date, str(lead["campaign_id"])))
        with cursor.copy(
            "COPY hookpipe.leadprosper_leads (lead_id, status, campaign_id, event_time, event_id,"
            " lead_date, cost, revenue, returned) FROM STDIN"
        ) as copy:
            for key, event_id, date, campaign in states:
                figures = (date, "1.50", "7.25", False) if checked else (None, None, None, None)
                copy.write_row((key, "ACCEPTED", campaign, now, event_id, *figures))


@dataclass
class Run:
    name: str
    requests: int
    pages: int
    backfilled: int
    seconds: float
    cpu: float


def run(stack: Stack, name: str, day: datetime, *extra: str) -> Run:
    env = {**os.environ, **stack.dev_env(), "COLUMNS": "200"}
    args = ["--since", day.isoformat(), "--until", (day + timedelta(days=1)).isoformat()]
    started = time.perf_counter()
    process = subprocess.Popen(
        [str(HOOKPIPE), "reconcile", "leadprosper", *args, "--json", *extra],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stdout, stderr = process.communicate()
    seconds = time.perf_counter() - started
    # communicate() reaped it; its usage is the children's usage gained since.
    usage = os.times()
    if process.returncode != 0:
        raise SystemExit(f"{name}: exit {process.returncode}\n{stderr[-2000:]}")
    report = json.loads(stdout)
    cpu = usage.children_user + usage.children_system
    return Run(name, report["requests"], report["pages"], report["backfilled"], seconds, cpu)


def main() -> int:
    stack = Stack(
        Path(tempfile.mkdtemp(prefix="hookpipe-bench-reconcile-")), project_id="hookpipe-bench"
    )
    stack.extra_env = {"HOOKPIPE_LOG_LEVEL": "WARNING"}
    config = load_source_configs(REPO / "infra/sources.toml")["leadprosper"].reconcile
    assert config is not None
    rate = config.requests_per_minute
    try:
        stack.start()
        base = stack.leadprosper_url.removesuffix("/public")
        day_a, day_b = leads_of(DAY_A, "a"), leads_of(DAY_B, "b")
        httpx.put(f"{base}/_standin/leads", json=day_a + day_b, timeout=60).raise_for_status()
        seed(stack.postgres.url, day_a, missing_every=MISSING_EVERY, checked=False)
        seed(stack.postgres.url, day_b, missing_every=None, checked=True)
        runs = []
        before = 0.0
        for name, day, fault, extra in [
            ("day A: 1% missing, never checked", DAY_A, {}, ()),
            ("day B: all there, counts agree", DAY_B, {}, ()),
            ("day B, /stats unreadable (baseline)", DAY_B, {"malformed_stats": 1}, ("--ignore-checkpoints",)),
        ]:  # fmt: skip
            httpx.put(f"{base}/_standin/faults", json=fault, timeout=10).raise_for_status()
            result = run(stack, name, day, *extra)
            result.cpu, before = result.cpu - before, result.cpu
            runs.append(result)
            print(f"  {name}: {result}", flush=True)
        served = httpx.get(f"{base}/_standin/requests", timeout=10).json()
    finally:
        stack.stop()

    needed = math.ceil(LEADS_A_DAY / PAGE_SIZE)
    floor = needed * 60 / rate
    print(f"\n{LEADS_A_DAY:,} leads a day, {CAMPAIGNS} campaigns, {rate} requests/min of the "
          f"stand-in's 100; pages needed to list a day: {needed}; the rate's floor for them: "
          f"{floor:.0f} s; the stand-in's busiest minute: {served['most_in_a_minute']}, "
          f"refused: {served['refused']}\n")  # fmt: skip
    print(
        "| run | backfilled | requests | requests / pages needed | wall s | wall / floor "
        "| own CPU s | CPU / floor | CPU µs / lead |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in runs:
        print(
            f"| {r.name} | {r.backfilled} | {r.requests} | {r.requests / needed:.2f} "
            f"| {r.seconds:.1f} | {r.seconds / floor:.2f} | {r.cpu:.2f} | {r.cpu / floor:.1%} "
            f"| {r.cpu / LEADS_A_DAY * 1e6:.0f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
