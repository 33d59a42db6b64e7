"""`hookpipe reconcile leadprosper` on the real stack, against the LeadProsper stand-in (its API
cannot run here: devstack/hookpipe_devstack/leadprosper_standin.py, docs/reconcile.md).

Leads of several campaigns and days, some delivered as webhooks through ingest and some never:
after one reconcile every lead's event is in both sinks exactly once, returned leads have a
RETURNED event and current state; a second run and a late real webhook add nothing; the API's
limit is never exceeded; faults end the run with a clear error and nothing published twice.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import StackHandle, wait_for

pytestmark = pytest.mark.stack
REPO = Path(__file__).resolve().parents[2]
HOOKPIPE = str(REPO / ".venv/bin/hookpipe")


def standin(stack: StackHandle, method: str, path: str, body: Any = None) -> Any:
    base = stack.stack.leadprosper_url.removesuffix("/public")
    response = httpx.request(method, base + path, json=body, timeout=10)
    response.raise_for_status()
    return response.json() if response.content else None


def api_lead(n: int, campaign: int, at: datetime, **fields: Any) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "lead_date_ms": int(at.timestamp() * 1000),
        "status": "ACCEPTED",
        "test": False,
        "cost": "1.50",
        "revenue": "7.25",
        "campaign_id": campaign,
        "campaign_name": f"Campaign {campaign}",
        "returned": False,
        "return_reason": None,
        "lead_data": {"email": f"lead{n}@example.com", "first_name": "Ada"},
        "supplier": {"id": 77, "name": "Supplier"},
        "buyers": [{"id": 5, "name": "Buyer", "status": "SOLD", "sell_price": "7.25"}],
        **fields,
    }


# Every run here connects as the job does on Google Cloud: a login user in the reconcile's own
# role (infra/supabase/migrations/*_reconcile_role.sql), which can write no event.
JOB_USER = "hookpipe_reconcile_job"


@pytest.fixture(scope="module", autouse=True)
def job_user(stack: StackHandle) -> None:
    stack.pg(
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'hookpipe_reconcile_job')"
        " THEN CREATE ROLE hookpipe_reconcile_job LOGIN IN ROLE hookpipe_reconcile; END IF; END $$"
    )


def job_env(stack: StackHandle) -> dict[str, str]:
    env = {**os.environ, **stack.stack.dev_env()}
    env["HOOKPIPE_DATABASE_URL"] = env["HOOKPIPE_DATABASE_URL"].replace(
        "postgresql://postgres@", f"postgresql://{JOB_USER}@", 1
    )
    assert JOB_USER in env["HOOKPIPE_DATABASE_URL"]
    return env


def reconcile(stack: StackHandle, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**job_env(stack), "COLUMNS": "200"}
    return subprocess.run(
        [HOOKPIPE, "reconcile", "leadprosper", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=300,
        check=False,
    )


def report_of(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode == 0, result.stdout + result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report


_WINDOWS = itertools.count()


@pytest.fixture
def window() -> tuple[datetime, datetime]:
    """Two past days of its own (three are kept free), so no other test's leads or checkpoints
    are in it: windows follow each other within a session, from a random start."""
    start = _FIRST_DAY + timedelta(days=3 * next(_WINDOWS))
    return start, start + timedelta(days=2)


_FIRST_DAY = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(days=uuid.uuid4().int % 300)


def _event_ids_of(stack: StackHandle, request_uuids: list[str]) -> dict[str, list[tuple[Any, ...]]]:
    rows = stack.pg(
        "SELECT payload->>'lp_request_uuid', event_id, payload->>'lp_status', origin "
        "FROM hookpipe.events WHERE payload->>'lp_request_uuid' = ANY(%s)",
        [request_uuids],
    )
    found: dict[str, list[tuple[Any, ...]]] = {}
    for key, *rest in rows:
        found.setdefault(key, []).append(tuple(rest))
    return found


def _states(stack: StackHandle, keys: list[str]) -> dict[str, tuple[Any, ...]]:
    rows = stack.pg(
        "SELECT lead_id, status, cost, revenue, returned FROM hookpipe.leadprosper_leads "
        "WHERE lead_id = ANY(%s)",
        [keys],
    )
    return {key: tuple(rest) for key, *rest in rows}


def test_every_lead_leadprosper_recorded_lands_in_both_sinks_once(
    stack: StackHandle, window: tuple[datetime, datetime]
) -> None:
    start, end = window
    leads = [
        api_lead(n, campaign=100 + n % 3, at=start + timedelta(hours=n * 1.5)) for n in range(30)
    ]
    for returned in (leads[3], leads[4]):
        returned.update(returned=True, return_reason="bad phone")
    leads[5]["status"] = "SOLD"
    standin(stack, "PUT", "/_standin/leads", leads)
    # A third of them reached us as webhooks (their status as a trigger sends it).
    delivered = leads[::3]
    delivered_ids = []
    for lead in delivered:
        body = {"lp_request_uuid": lead["id"], "lp_status": lead["status"],
                "lp_campaign_id": str(lead["campaign_id"])}  # fmt: skip
        response = stack.post(body)
        assert response.status_code == 202
        delivered_ids.append(response.json()["event_id"])
    # They landed long before the hourly job looks at their day; a run racing its own webhooks
    # in flight would publish them again (absorbed by the sinks, docs/reconcile.md).
    stack.wait_committed(delivered_ids)
    before = standin(stack, "GET", "/_standin/requests")
    args = ("--since", start.isoformat(), "--until", end.isoformat(), "--json")

    dry = report_of(reconcile(stack, *args, "--dry-run"))
    assert dry["backfilled"] == 20 + 2  # the undelivered, and a RETURNED event for each return

    result = reconcile(stack, *args)
    report = report_of(result)
    assert report["backfilled"] == 22
    # Its one log line, which the alerts count: webhooks were lost, so a warning.
    [line] = [json.loads(x) for x in result.stderr.splitlines() if '"reconcile_run"' in x]
    assert (line["severity"], line["backfilled"], line["finished"]) == ("WARNING", 22, True)
    assert sum(d["leads"] for d in report["days"]) == 30
    assert {d["campaign"] for d in report["days"]} == {"100", "101", "102"}
    assert sum(d["returned"] for d in report["days"]) == 2
    assert report["requests"] == report["pages"] + 2 == 4  # a /stats and a page for each day

    keys = [lead["id"] for lead in leads]
    wait_for(lambda: sum(map(len, _event_ids_of(stack, keys).values())) == 32, 60, "32 events")
    events = _event_ids_of(stack, keys)
    for lead in leads:
        expected = {lead["status"]} | ({"RETURNED"} if lead["returned"] else set())
        assert {status for _, status, _ in events[lead["id"]]} == expected
        origins = {origin for _, _, origin in events[lead["id"]]}
        if lead not in delivered:
            assert origins == {"reconcile"}
        else:  # its RETURNED event, if any, is the reconcile's
            assert origins == ({"webhook", "reconcile"} if lead["returned"] else {"webhook"})
    ids = [event_id for rows in events.values() for event_id, _, _ in rows]
    assert sorted(r["event_id"] for r in stack.bq_rows("events", ids)) == sorted(ids)
    states = _states(stack, keys)
    assert states[leads[3]["id"]][0] == states[leads[4]["id"]][0] == "RETURNED"
    assert states[leads[5]["id"]][0] == "SOLD"
    # The API's figures reach the delivered leads' rows at once, no second copy of their events.
    for lead in delivered:
        assert states[lead["id"]][1:] == (Decimal("1.50"), Decimal("7.25"), lead["returned"])

    # Once more: each campaign's day was just finished (checkpoints): only /stats is asked.
    again = report_of(reconcile(stack, *args))
    assert (again["backfilled"], again["requests"], again["pages"]) == (0, 2, 0)
    assert {d["checked"] for d in again["days"]} == {"checkpoint"}
    # Without the checkpoints: the backfilled leads' rows get their figures (they had none, so
    # their days' counts disagreed), and then every count agrees: only /stats is asked.
    relisted = report_of(reconcile(stack, *args, "--ignore-checkpoints"))
    assert (relisted["backfilled"], relisted["pages"]) == (0, 2)
    states = _states(stack, keys)
    assert all(states[key][1:3] == (Decimal("1.50"), Decimal("7.25")) for key in keys)
    agreed = report_of(reconcile(stack, *args, "--ignore-checkpoints"))
    assert (agreed["backfilled"], agreed["requests"], agreed["pages"]) == (0, 2, 0)
    assert {d["checked"] for d in agreed["days"]} == {"counts agree"}

    # A late real webhook for a backfilled lead: nothing new.
    late = {"lp_request_uuid": leads[1]["id"], "lp_status": leads[1]["status"]}
    response = stack.post(late)
    assert response.status_code == 202
    stack.wait_committed([response.json()["event_id"]])
    assert len(_event_ids_of(stack, keys)[leads[1]["id"]]) == 1
    assert len(stack.bq_rows("events", [response.json()["event_id"]])) == 1
    assert _states(stack, [leads[1]["id"]])[leads[1]["id"]][1] == Decimal("1.50")  # kept
    # A returned lead's original webhook, arriving after the return: current state stays so.
    original = {"lp_request_uuid": leads[4]["id"], "lp_status": "ACCEPTED"}
    response = stack.post(original)
    assert response.status_code == 202
    stack.wait_committed([response.json()["event_id"]])
    assert _states(stack, [leads[4]["id"]])[leads[4]["id"]][0] == "RETURNED"
    assert len(_event_ids_of(stack, keys)[leads[4]["id"]]) == 2

    after = standin(stack, "GET", "/_standin/requests")
    assert after["most_in_a_minute"] <= 100
    assert after["refused"] == before["refused"]  # the client stayed inside the budget


@pytest.mark.parametrize(
    ("fault", "finishes"),
    [
        ({"status": 429, "times": 2}, True),  # waits as told, then resumes
        ({"status": 503, "times": 2}, True),  # retried
        ({"status": 503, "times": 10}, False),
        ({"malformed": 1}, False),
        ({"repeat_cursor": 1, "times": 5}, False),
    ],
)
def test_an_api_that_misbehaves_ends_the_run_clearly_and_publishes_nothing_twice(
    stack: StackHandle, window: tuple[datetime, datetime], fault: dict[str, Any], finishes: bool
) -> None:
    start, end = window
    leads = [api_lead(n, campaign=200, at=start + timedelta(minutes=n)) for n in range(150)]
    standin(stack, "PUT", "/_standin/leads", leads)
    args = ("--since", start.isoformat(), "--until", end.isoformat())
    if "repeat_cursor" in fault:
        reconcile(stack, *args, "--dry-run")  # its first page answered; the fault is the cursor
    standin(stack, "PUT", "/_standin/faults", fault)
    result = reconcile(stack, *args, "--json")
    first = json.loads(result.stdout)
    assert first["finished"] is finishes
    if finishes:
        assert result.returncode == 0
        assert first["backfilled"] == 150
    else:
        assert result.returncode == 1
        assert "the window was not finished" in result.stderr
        assert "Traceback" not in result.stderr
    standin(stack, "PUT", "/_standin/faults", {})
    keys = [lead["id"] for lead in leads]
    # What the first run published lands; the next run publishes the rest, and only the rest.
    landed = lambda: sum(map(len, _event_ids_of(stack, keys).values()))  # noqa: E731
    wait_for(lambda: landed() == len(first["published"]), 90, "the first run's events")
    second = report_of(reconcile(stack, *args, "--json"))
    assert not set(second["published"]) & set(first["published"])
    assert len(first["published"]) + len(second["published"]) == 150
    wait_for(lambda: len(_event_ids_of(stack, keys)) == 150, 90, "every lead's event")
    assert all(len(rows) == 1 for rows in _event_ids_of(stack, keys).values())


def test_one_run_at_a_time_a_lease_that_expires(
    stack: StackHandle, window: tuple[datetime, datetime]
) -> None:
    """Two runs at once: one does the window, the other exits 6 and publishes nothing; a lease a
    killed run left behind is taken once it has expired."""
    from concurrent.futures import ThreadPoolExecutor

    start, end = window
    leads = [api_lead(n, campaign=300, at=start + timedelta(minutes=n)) for n in range(40)]
    standin(stack, "PUT", "/_standin/leads", leads)
    args = ("--since", start.isoformat(), "--until", end.isoformat(), "--json")
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: reconcile(stack, *args), range(2)))
    codes = sorted(r.returncode for r in results)
    if codes == [0, 0]:  # the first was done before the second began: nothing left for it
        reports = [json.loads(r.stdout) for r in results]
        assert sorted(r["backfilled"] for r in reports) == [0, 40]
    else:
        assert codes == [0, 6]
        [done] = [r for r in results if r.returncode == 0]
        [held] = [r for r in results if r.returncode == 6]
        assert json.loads(done.stdout)["backfilled"] == 40
        assert "another reconcile is running" in held.stderr
        assert held.stdout == ""
        assert '"reconcile_not_run"' in held.stderr  # the runbook looks for it
    keys = [lead["id"] for lead in leads]
    wait_for(lambda: len(_event_ids_of(stack, keys)) == 40, 60, "every lead's event")
    assert all(len(rows) == 1 for rows in _event_ids_of(stack, keys).values())
    assert stack.pg("SELECT name FROM hookpipe.reconcile_leases") == []  # given back

    # A run killed midway left its lease: held until it expires, then taken.
    stack.pg(
        "INSERT INTO hookpipe.reconcile_leases (name, holder, expires_at) "
        "VALUES ('reconcile:leadprosper', 'killed-run', now() + interval '1 hour')"
    )
    try:
        held = reconcile(stack, *args)
        assert held.returncode == 6
        assert "killed-run holds reconcile:leadprosper" in held.stderr
        [line] = [json.loads(x) for x in held.stderr.splitlines() if '"reconcile_not_run"' in x]
        assert line["severity"] == "WARNING"
        stack.pg("UPDATE hookpipe.reconcile_leases SET expires_at = now() - interval '1 second'")
        assert report_of(reconcile(stack, *args))["backfilled"] == 0
    finally:
        stack.pg("DELETE FROM hookpipe.reconcile_leases")


def test_a_run_killed_mid_window_resumes_from_its_checkpoint(
    stack: StackHandle, window: tuple[datetime, datetime]
) -> None:
    """SIGKILL once the first day's checkpoint is written: the next run (the lease expired) does
    not list that day again, finishes the rest, and every lead's event is in the sinks once."""
    start, _ = window
    end = start + timedelta(days=3)
    leads = [
        api_lead(n, campaign=400, at=start + timedelta(days=n % 3, minutes=n)) for n in range(450)
    ]
    standin(stack, "PUT", "/_standin/leads", leads)
    args = ("--since", start.isoformat(), "--until", end.isoformat(), "--json")
    first_day = start.date()
    killed = subprocess.Popen(
        [HOOKPIPE, "reconcile", "leadprosper", *args],
        env=job_env(stack),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        checkpoint = (
            "SELECT 1 FROM hookpipe.reconcile_checkpoints"
            " WHERE source = 'leadprosper' AND day = %s AND campaign = '400'"
        )
        wait_for(
            lambda: stack.pg(checkpoint, [first_day]) or killed.poll() is not None,
            120,
            "the first day's checkpoint",
        )
    finally:
        killed.kill()
        killed.wait()
    assert killed.returncode == -signal.SIGKILL  # killed mid-window, not finished on its own
    stack.pg("UPDATE hookpipe.reconcile_leases SET expires_at = now() - interval '1 second'")

    resumed = report_of(reconcile(stack, *args))
    checked = {d["day"]: d["checked"] for d in resumed["days"]}
    assert checked[first_day.isoformat()] == "checkpoint"
    assert 0 < resumed["pages"] <= 4  # two pages a day for at most the two other days
    assert resumed["backfilled"] > 0
    keys = [lead["id"] for lead in leads]
    wait_for(lambda: len(_event_ids_of(stack, keys)) == 450, 120, "every lead's event")
    assert all(len(rows) == 1 for rows in _event_ids_of(stack, keys).values())
    ids = [event_id for rows in _event_ids_of(stack, keys).values() for event_id, _, _ in rows]
    assert len(stack.bq_rows("events", ids)) == 450


def test_the_reconcile_role_cannot_write_an_event_or_the_workers_columns(
    stack: StackHandle,
) -> None:
    import psycopg

    url = job_env(stack)["HOOKPIPE_DATABASE_URL"]
    refused = [
        "INSERT INTO hookpipe.events (event_id) VALUES ('forged')",
        "UPDATE hookpipe.leadprosper_leads SET status = 'SOLD'",
        "SELECT payload FROM hookpipe.events LIMIT 1",
        "DELETE FROM hookpipe.leadprosper_leads",
    ]
    for statement in refused:
        with psycopg.connect(url) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(statement)
