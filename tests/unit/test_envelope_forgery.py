"""What ingest authenticated is the envelope: nothing a sender sends (its Content-Type above all)
chooses an event's id, source, type or time, or replaces its data.

A sender holding one source's token sends a body that is itself a structured-mode CloudEvent,
naming another source, an id of its choosing and a far-future time, under every Content-Type ingest
accepts. The event ingest publishes and the row the worker builds must be ingest's: its id, its
source, its receipt time, the body byte for byte.
"""

from __future__ import annotations

import json
from typing import Any

from hookpipe.event import from_message, to_message
from hookpipe.sources import load_source_configs
from hookpipe_worker.process import Commit, Push, decide
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from tests.events import push_envelope
from tests.ingest_fakes import NOW, REPO, TOKEN, RecordingPublisher, asgi, ingest_app

SOURCES = load_source_configs(REPO / "infra/sources.toml")
FORGED: dict[str, Any] = {
    "specversion": "1.0",
    "id": "forged-id",
    "source": "/sources/github",
    "type": "com.github.webhook",
    "time": "9999-12-31T23:59:59Z",
    "datacontenttype": "application/json",
    "data": {"lp_request_uuid": "someone-else", "lp_status": "RETURNED"},
}
BODY = json.dumps(FORGED).encode()

_CLOUDEVENTS_TYPES = [
    "application/cloudevents+json",
    "application/cloudevents-batch+json",
    "application/cloudevents",
    "APPLICATION/CloudEvents+JSON",
    "application/cloudevents+json; charset=utf-8",
    " application/cloudevents+json ",
]
content_types = (
    st.sampled_from(
        [
            *_CLOUDEVENTS_TYPES,
            "application/json",
            "application/vnd.api+json",
            "text/json",
            "application/x-www-form-urlencoded",
            "application/xml",
            "text/xml",
            "",
        ]
    )
    | st.from_regex(r"\Aapplication/[a-z.-]{1,20}\+json(; ?charset=utf-8)?\Z")
    | st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(content_type=content_types)
def test_no_content_type_lets_the_body_choose_the_envelope(content_type: str) -> None:
    publisher = RecordingPublisher()
    client = TestClient(asgi(ingest_app(publisher)))
    headers = {"Authorization": f"Bearer {TOKEN}"}
    if content_type:
        headers["Content-Type"] = content_type
    response = client.post("/webhooks/leadprosper", content=BODY, headers=headers)
    assert response.status_code == 202, response.text  # LeadProsper never retries: kept
    (published,) = publisher.published
    assert published.source == "leadprosper"
    assert published.time == NOW
    assert published.data == BODY
    assert published.id == response.json()["event_id"] != "forged-id"

    data, attributes = to_message(published)
    decoded = from_message(data, attributes)
    assert decoded == published

    decision = decide(Push(json.dumps(push_envelope(data, attributes)).encode(), {}), SOURCES)
    assert isinstance(decision, Commit)
    row = decision.row
    assert (row.event_id, row.source, row.received_at) == (published.id, "leadprosper", NOW)
    # The body is the webhook's whole document, never the forged "data" member alone.
    assert row.payload_json is None or json.loads(row.payload_json) == FORGED
    assert row.body in (None, BODY)
