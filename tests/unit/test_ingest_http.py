"""Ingest's HTTP contract, in process with a recording publisher."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import urlencode

import pytest
from hookpipe_ingest.app import read_body
from starlette.requests import Request
from starlette.testclient import TestClient

from tests.ingest_fakes import TOKEN, RecordingPublisher, RecordingSpool, asgi, ingest_app

AUTH = {"Authorization": f"Bearer {TOKEN}"}
LEAD = {"lp_request_uuid": "u-1", "lp_status": "SOLD", "lp_lead_id": "L1"}


@pytest.fixture
def publisher() -> RecordingPublisher:
    return RecordingPublisher()


@pytest.fixture
def client(publisher: RecordingPublisher) -> TestClient:
    return TestClient(asgi(ingest_app(publisher)))


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "status", "message"),
    [
        ("POST", "/webhooks/nope", AUTH, b"{}", 404, "no webhook source"),
        ("POST", "/elsewhere", AUTH, b"{}", 404, "no webhook source"),
        ("GET", "/webhooks/leadprosper", AUTH, b"", 405, "webhooks are POSTed"),
        ("POST", "/webhooks/leadprosper", {}, b"{}", 401, "no token"),
        (
            "POST",
            "/webhooks/leadprosper",
            {"Authorization": "Bearer x" * 3},
            b"{}",
            401,
            "does not match",
        ),
        (
            "POST",
            "/webhooks/retrying",
            {**AUTH, "Content-Type": "text/plain"},
            b"hi",
            415,
            "text/plain is not supported",
        ),
        (
            "POST",
            "/webhooks/retrying",
            {**AUTH, "Content-Type": "application/xml"},
            b"<a/>",
            415,
            "accepts json, not xml",
        ),
        ("POST", "/webhooks/retrying", AUTH, b"{}", 415, "(none) is not supported"),
        (
            "POST",
            "/webhooks/retrying",
            {**AUTH, "Content-Type": "application/json; x=" + "y" * 300},
            b"{}",
            415,
            "is over 256 bytes",
        ),
        (
            "POST",
            "/webhooks/retrying",
            {**AUTH, "Content-Type": "application/json"},
            b"{",
            400,
            "does not parse",
        ),
        (
            "POST",
            "/webhooks/retrying",
            {**AUTH, "Content-Type": "application/json"},
            b'{"n": ' + b"1" * 5000 + b"}",
            400,
            "does not parse",
        ),
        (
            "POST",
            "/webhooks/leadprosper",
            {**AUTH, "Content-Type": "application/json"},
            b"x" * (1024 * 1024 + 1),
            413,
            "over the 1048576-byte limit",
        ),
    ],
)
def test_rejections_have_a_precise_status_and_message_and_publish_nothing(
    client: TestClient,
    publisher: RecordingPublisher,
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes,
    status: int,
    message: str,
) -> None:
    response = client.request(method, path, headers=headers, content=body)
    assert response.status_code == status
    assert message in response.json()["error"]
    assert response.json()["status"] == status
    assert publisher.published == []


def test_405_says_what_is_allowed(client: TestClient) -> None:
    assert client.get("/webhooks/leadprosper").headers["allow"] == "POST"


def test_authentication_runs_before_parsing(client: TestClient) -> None:
    """A bad body without credentials is 401, not 400: nothing is parsed for strangers."""
    response = client.post(
        "/webhooks/leadprosper", content=b"{", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", json.dumps(LEAD).encode()),
        ("application/x-www-form-urlencoded", urlencode(LEAD).encode()),
        (
            "application/xml",
            b"<lead><lp_request_uuid>u-1</lp_request_uuid>"
            b"<lp_status>SOLD</lp_status><lp_lead_id>L1</lp_lead_id></lead>",
        ),
    ],
)
def test_every_body_format_is_accepted_with_the_same_event_id(
    client: TestClient, publisher: RecordingPublisher, content_type: str, body: bytes
) -> None:
    response = client.post(
        "/webhooks/leadprosper", content=body, headers={**AUTH, "Content-Type": content_type}
    )
    assert response.status_code == 202
    [event] = publisher.published
    assert response.json() == {"event_id": event.id}
    assert event.data == body  # the original bytes travel unchanged
    assert event.content_type == content_type
    # Idempotency from lp_request_uuid + lp_status, whatever the format.
    from hookpipe.event import event_id

    assert event.id == event_id("leadprosper", "fields:u-1\x1fSOLD")


def test_one_lead_with_two_statuses_is_two_events(
    client: TestClient, publisher: RecordingPublisher
) -> None:
    for status in ("ACCEPTED", "SOLD"):
        client.post("/webhooks/leadprosper", json={**LEAD, "lp_status": status}, headers=AUTH)
    assert len({e.id for e in publisher.published}) == 2


def test_without_idempotency_fields_the_id_is_a_content_hash(
    client: TestClient, publisher: RecordingPublisher
) -> None:
    for _ in range(2):
        client.post("/webhooks/leadprosper", json={"a": 1}, headers=AUTH)
    client.post("/webhooks/leadprosper", json={"a": 2}, headers=AUTH)
    ids = [e.id for e in publisher.published]
    assert ids[0] == ids[1] != ids[2]


def test_unconfirmed_publish_is_503_with_retry_after() -> None:
    client = TestClient(asgi(ingest_app(RecordingPublisher(fail=True))))
    response = client.post("/webhooks/leadprosper", json=LEAD, headers=AUTH)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "7"
    assert "did not confirm" in response.json()["error"]
    assert client.get("/readyz").status_code == 503


def test_traceparent_is_forwarded_in_the_event(
    client: TestClient, publisher: RecordingPublisher
) -> None:
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    client.post("/webhooks/leadprosper", json=LEAD, headers={**AUTH, "traceparent": traceparent})
    assert publisher.published[0].traceparent == traceparent


def test_with_a_spool_ingest_stays_ready_while_pubsub_is_down() -> None:
    client = TestClient(asgi(ingest_app(RecordingPublisher(fail=True), RecordingSpool())))
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "pubsub": False, "spool": True}
    accepted = client.post("/webhooks/leadprosper", json=LEAD, headers=AUTH)
    assert accepted.status_code == 202


def test_readyz_asks_pubsub_at_most_once_per_few_seconds(
    client: TestClient, publisher: RecordingPublisher
) -> None:
    """It is unauthenticated: a flood of probes must not become a flood of admin calls."""
    for _ in range(50):
        assert client.get("/readyz").status_code == 200
    assert publisher.readiness_checks == 1


def test_health(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200


@pytest.mark.parametrize(
    ("headers", "body", "problem", "content_type"),
    [
        ({"Content-Type": "application/json"}, b'{"lp_status": "SOL', "does not parse", None),
        ({"Content-Type": "text/plain"}, b"lp_status=SOLD", "text/plain is not supported", None),
        ({}, b"lp_status=SOLD", "(none) is not supported", "application/octet-stream"),
        (
            {"Content-Type": "application/json; x=" + "y" * 2000},
            b"{}",
            "is over 256 bytes",
            "application/octet-stream",
        ),
        ({"Content-Type": "application/json"}, b"\xff\xfe{\x00}", "not valid UTF-8", None),
        ({"Content-Type": "application/json"}, b'{"n": ' + b"9" * 5000 + b"}", "4300", None),
        (
            {"Content-Type": "application/xml"},
            b"<a>" * 5000 + b"</a>" * 5000,
            "nested more than 100 levels",
            None,
        ),
        (
            {"Content-Type": "application/xml"},
            b'<?xml version="1.0" encoding="x-klingon"?><a/>',
            "unsupported encoding",
            None,
        ),
        (
            {"Content-Type": "application/xml"},
            b'<!DOCTYPE a [<!ENTITY b "bbbbbbbb">]><a>&b;&b;</a>',
            "XML body refused",
            None,
        ),
    ],
)
def test_a_sender_that_never_retries_gets_202_and_its_event_is_marked(
    client: TestClient,
    publisher: RecordingPublisher,
    headers: dict[str, str],
    body: bytes,
    problem: str,
    content_type: str | None,
) -> None:
    """LeadProsper reads no answer: a refused webhook would be lost, so it is kept, marked."""
    response = client.post("/webhooks/leadprosper", content=body, headers={**AUTH, **headers})
    assert response.status_code == 202, response.text
    [event] = publisher.published
    assert response.json() == {"event_id": event.id}
    assert event.data == body
    assert event.problem is not None
    assert problem in event.problem
    assert event.content_type == (content_type or headers["Content-Type"])
    # The id is the body's hash (its fields cannot be read): a resend is the same event.
    client.post("/webhooks/leadprosper", content=body, headers={**AUTH, **headers})
    assert publisher.published[1].id == event.id


def test_a_sender_that_never_retries_is_still_refused_without_credentials(
    client: TestClient, publisher: RecordingPublisher
) -> None:
    response = client.post(
        "/webhooks/leadprosper", content=b"{", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 401
    assert publisher.published == []


def test_a_lone_surrogate_in_an_idempotency_field_is_still_kept_with_a_stable_id(
    client: TestClient, publisher: RecordingPublisher
) -> None:
    """The id is derived from the field's text; text JSON allows but UTF-8 cannot encode (a
    lone surrogate) once made that derivation raise, a 500 LeadProsper would never resend."""
    body = b'{"lp_request_uuid": "\\ud800", "lp_status": "SOLD"}'
    for _ in range(2):
        response = client.post(
            "/webhooks/leadprosper",
            content=body,
            headers={**AUTH, "Content-Type": "application/json"},
        )
        assert response.status_code == 202, response.text
    assert publisher.published[0].id == publisher.published[1].id


def test_a_content_length_in_other_digits_is_not_a_500() -> None:
    """'²' passes str.isdigit() but not int(); the body is read and measured as it streams."""
    body = b'{"lp_lead_id": "1"}'

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": body, "more_body": False}

    request = Request({"type": "http", "method": "POST", "headers": []}, receive)
    assert asyncio.run(read_body(request, 1024, "²")) == body


def test_a_large_body_is_normalized_off_the_event_loop() -> None:
    """A 1 MB XML body of 200k elements takes over a second to normalize; meanwhile ingest must
    go on answering: a health check sent after it is answered before it."""
    import httpx

    publisher = RecordingPublisher()
    app = asgi(ingest_app(publisher))
    body = b"<lead>" + b"<a/>" * 200_000 + b"</lead>"  # 800 KB
    finished: list[str] = []

    async def scenario() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:

            async def big() -> None:
                response = await client.post(
                    "/webhooks/leadprosper",
                    content=body,
                    headers={**AUTH, "Content-Type": "application/xml"},
                )
                assert response.status_code == 202
                finished.append("xml")

            async def health() -> None:
                await asyncio.sleep(0.05)  # let the XML request get going first
                assert (await client.get("/healthz")).status_code == 200
                finished.append("healthz")

            await asyncio.gather(big(), health())

    asyncio.run(scenario())
    assert finished == ["healthz", "xml"]
    assert len(publisher.published[0].data) == len(body)
