"""LeadProsper's API as the reconcile reads it: a lead becomes the events a trigger would have
sent, with ingest's ids; the client stays in the budget and stops on what it cannot use. Pure, and
a tiny fake session (the real client runs against the stand-in in tests/e2e/test_reconcile.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hookpipe.event import from_message, to_message
from hookpipe.sources import load_source_configs
from hookpipe_ingest.accept import accept
from hookpipe_ingest.auth import WebhookRequest
from hookpipe_ingest.sources import resolve_secrets
from hookpipe_ops.leadprosper import ApiError, events_for, parse_page
from hookpipe_ops.leadprosper_api import LeadProsperApi

REPO = Path(__file__).resolve().parents[2]
CONFIG = load_source_configs(REPO / "infra/sources.toml")["leadprosper"]
NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
TOKEN = "test-token-0123456789abcdef"
LEAD = {
    "id": "Oi_PE5UB8JeApcHI06lG",
    "lead_date_ms": 1764700000000,
    "status": "ACCEPTED",
    "campaign_id": 2024,
    "returned": False,
    "lead_data": {"email": "ada@example.com", "lp_status": "a campaign field must not win"},
    "supplier": {"id": 77},
    "cost": "1.50",
    "revenue": "7.25",
}


def _ingest_id(body: dict[str, Any]) -> str:
    """The id ingest gives a webhook with this body (its own code, not a copy of the rule)."""
    source = resolve_secrets("leadprosper", CONFIG, {"HOOKPIPE_LEADPROSPER_TOKENS": TOKEN})
    request = WebhookRequest(
        "leadprosper",
        json.dumps(body).encode(),
        {"content-type": "application/json", "authorization": f"Bearer {TOKEN}"},
        {},
        NOW,
    )
    return accept(source, request, None).id


def test_a_lead_becomes_its_status_event_with_the_id_ingest_gives_its_webhook() -> None:
    [event] = events_for(LEAD, "leadprosper", CONFIG, NOW)
    assert event.id == _ingest_id({"lp_request_uuid": LEAD["id"], "lp_status": "ACCEPTED"})
    assert (event.origin, event.time, event.source) == ("reconcile", NOW, "leadprosper")
    payload = json.loads(event.data)
    assert payload["lp_status"] == "ACCEPTED"
    assert payload["email"] == "ada@example.com"
    assert payload["lp_api"]["revenue"] == "7.25"
    assert from_message(*to_message(event)) == event


def test_a_returned_lead_also_becomes_a_returned_event_placed_after_its_status() -> None:
    returned = {**LEAD, "status": "SOLD", "returned": True, "return_reason": "bad phone"}
    sold, back = events_for(returned, "leadprosper", CONFIG, NOW)
    assert json.loads(back.data)["lp_status"] == "RETURNED"
    assert back.id == _ingest_id({"lp_request_uuid": LEAD["id"], "lp_status": "RETURNED"})
    assert json.loads(back.data)["lp_timestamp"] > json.loads(sold.data)["lp_timestamp"]
    assert json.loads(back.data)["lp_api"]["return_reason"] == "bad phone"
    assert events_for({**LEAD, "status": ""}, "leadprosper", CONFIG, NOW) == []


@pytest.mark.parametrize(
    "document",
    [None, [], {"leads": "x"}, {"leads": [{"status": "A"}]}, {"leads": [], "search_after": {}}],
)
def test_a_page_that_is_not_one_is_an_api_error(document: object) -> None:
    with pytest.raises(ApiError):
        parse_page(document)


def test_the_last_page_has_no_cursor() -> None:
    assert parse_page({"leads": [LEAD]}).cursor is None
    assert parse_page({"leads": [LEAD], "search_after": "c1"}).cursor == "c1"


class FakeResponse:
    def __init__(self, status: int, body: Any = None, headers: dict[str, str] | None = None):
        self.status_code, self._body, self.headers = status, body, headers or {}
        self.text = json.dumps(body)

    def json(self) -> Any:
        return self._body


class FakeSession:
    """Answers in turn; records when (on the fake clock) each request was made."""

    def __init__(self, answers: list[FakeResponse], clock: list[float]) -> None:
        self.answers, self.clock, self.made_at = answers, clock, []

    def get(self, url: str, **_: Any) -> FakeResponse:
        self.made_at.append(self.clock[0])
        return self.answers.pop(0)


def _api(answers: list[FakeResponse], per_minute: int = 60) -> tuple[LeadProsperApi, FakeSession]:
    clock = [0.0]
    session = FakeSession(answers, clock)

    def sleep(seconds: float) -> None:
        clock[0] += seconds

    api = LeadProsperApi("http://lp/public", "key", per_minute, session=session,  # type: ignore[arg-type]
                         clock=lambda: clock[0], sleep=sleep)  # fmt: skip
    return api, session


def _pages(api: LeadProsperApi) -> list[int]:
    return [len(p.leads) for p in api.leads(NOW, NOW, max_pages=10)]


def test_requests_are_spaced_to_the_budget_and_a_429_waits_as_told() -> None:
    api, session = _api(
        [
            FakeResponse(200, {"leads": [LEAD], "search_after": "c1"}),
            FakeResponse(429, {}, {"Retry-After": "7"}),
            FakeResponse(200, {"leads": [LEAD]}),
        ],
        per_minute=30,
    )
    assert _pages(api) == [1, 1]
    assert session.made_at == [0.0, 2.0, 9.0]  # 60/30 s apart; then the 7 s it asked for
    assert api.requests_made == 3


def test_5xx_is_retried_then_an_error_and_a_repeated_cursor_is_an_error_not_a_loop() -> None:
    api, _ = _api([FakeResponse(503), FakeResponse(502), FakeResponse(200, {"leads": []})])
    assert _pages(api) == [0]
    api, _ = _api([FakeResponse(503)] * 4)
    with pytest.raises(ApiError, match="503, 4 tries"):
        _pages(api)
    looping = [FakeResponse(200, {"leads": [LEAD], "search_after": "same"}) for _ in range(3)]
    api, _ = _api(looping)
    with pytest.raises(ApiError, match="repeated its search_after"):
        _pages(api)
    api, _ = _api([FakeResponse(401, {"error": "Unauthenticated."})])
    with pytest.raises(ApiError, match="API key was refused"):
        _pages(api)


def test_a_publish_pubsub_does_not_confirm_ends_the_run_unfinished_keeping_what_it_did() -> None:
    """Pub/Sub down mid-run: not a traceback, a report that says the window was not finished."""
    from hookpipe_ops.reconcile import reconcile

    from tests.unit.test_reconcile_run import FakeLedger

    stats = {"campaigns": [{"id": 2024, "leads_total": 3}], "suppliers": []}

    leads = [{**LEAD, "id": f"lead-{n}", "lead_data": ["not", "an", "object"]} for n in range(3)]
    api, _ = _api([FakeResponse(200, stats), FakeResponse(200, {"leads": leads})])
    published: list[str] = []

    def publish(messages: list[tuple[bytes, dict[str, str]]]) -> list[BaseException | None]:
        outcomes: list[BaseException | None] = []
        for _, attributes in messages:  # the third is not confirmed
            if len(published) == 2:
                outcomes.append(TimeoutError("Pub/Sub did not confirm"))
            else:
                published.append(attributes["ce-id"])
                outcomes.append(None)
        return outcomes

    report = reconcile(api, "leadprosper", CONFIG, start=NOW, end=NOW + timedelta(hours=1),
                       campaigns=(), ledger=FakeLedger(), publish=publish, now=lambda: NOW,
                       dry_run=False)  # fmt: skip
    assert not report.finished
    assert report.error is not None
    assert "TimeoutError: Pub/Sub did not confirm" in report.error
    assert report.published_ids == published
    assert len(published) == 2


def test_an_unknown_time_zone_is_refused_when_the_sources_file_is_read() -> None:
    from hookpipe.sources import ReconcileSpec
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="not an IANA time zone"):
        ReconcileSpec(timezone="Mars/Olympus_Mons")
    assert ReconcileSpec(timezone="America/New_York").timezone == "America/New_York"
