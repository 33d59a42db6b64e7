from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hookpipe.errors import EnvelopeError
from hookpipe.event import WebhookEvent, event_id, from_message, to_message
from hypothesis import given, settings
from hypothesis import strategies as st

NOW = datetime(2026, 11, 26, 9, 30, 15, 123456, tzinfo=UTC)


def _event(**changes: object) -> WebhookEvent:
    fields: dict[str, object] = {
        "id": event_id("leadprosper", "k"),
        "source": "leadprosper",
        "type": "com.leadprosper.campaign_trigger",
        "time": NOW,
        "content_type": "application/x-www-form-urlencoded",
        "data": b"lp_lead_id=1&lp_status=SOLD",
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    }
    fields.update(changes)
    return WebhookEvent(**fields)  # type: ignore[arg-type]


def test_binary_content_mode_attributes() -> None:
    data, attributes = to_message(_event())
    assert data == b"lp_lead_id=1&lp_status=SOLD"
    assert attributes == {
        "ce-specversion": "1.0",
        "ce-id": event_id("leadprosper", "k"),
        "ce-source": "/sources/leadprosper",
        "ce-type": "com.leadprosper.campaign_trigger",
        "ce-time": "2026-11-26T09:30:15.123456Z",
        "ce-traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "content-type": "application/x-www-form-urlencoded",
    }


@pytest.mark.parametrize("data", [b'{"a": 1}', b"", b"\x00\xff raw bytes"])
def test_round_trip_keeps_the_body_byte_for_byte(data: bytes) -> None:
    event = _event(data=data, content_type="application/json", traceparent=None)
    assert from_message(*to_message(event)) == event


def test_a_marked_event_carries_its_problem_as_an_extension_attribute() -> None:
    event = _event(problem="JSON body does not parse: Expecting value at line 1 column 1")
    data, attributes = to_message(event)
    assert attributes["ce-hookpipeproblem"] == event.problem
    assert from_message(data, attributes) == event
    # However long the problem, the attribute stays far under Pub/Sub's 1024-byte limit.
    _, attributes = to_message(_event(problem="é" * 2000))
    assert len(attributes["ce-hookpipeproblem"].encode()) <= 512


def test_event_id_is_stable_and_source_scoped() -> None:
    assert event_id("leadprosper", "abc") == event_id("leadprosper", "abc")
    assert event_id("leadprosper", "abc") != event_id("other", "abc")


@pytest.mark.parametrize(
    ("attributes", "message"),
    [
        ({}, "not a CloudEvent"),
        (
            {
                "ce-specversion": "1.0",
                "ce-id": "1",
                "ce-type": "t",
                "ce-source": "/elsewhere/x",
                "ce-time": "2026-11-26T00:00:00Z",
            },
            "is not /sources/<name>",
        ),
        (
            {"ce-specversion": "1.0", "ce-id": "1", "ce-type": "t", "ce-source": "/sources/x"},
            "ce-time is missing",
        ),
        (
            {
                "ce-specversion": "1.0",
                "ce-id": "1",
                "ce-type": "t",
                "ce-source": "/sources/x",
                "ce-time": "yesterday",
            },
            "not an RFC 3339",
        ),
    ],
)
def test_undecodable_messages_raise_envelope_error(
    attributes: dict[str, str], message: str
) -> None:
    with pytest.raises(EnvelopeError, match=message):
        from_message(b"{}", attributes)


def test_attribute_names_are_case_insensitive() -> None:
    """The CloudEvents Pub/Sub binding: CE-TIME is ce-time."""
    event = _event(traceparent=None)
    data, attributes = to_message(event)
    assert from_message(data, {k.upper(): v for k, v in attributes.items()}) == event


@pytest.mark.parametrize(
    ("data_fields", "expected"),
    [
        ({"data": {"lp_status": "SOLD"}}, b'{"lp_status": "SOLD"}'),
        ({"data": "lp_status=SOLD"}, b"lp_status=SOLD"),
        ({"data_base64": "AP8="}, b"\x00\xff"),
        ({}, b""),
    ],
)
def test_a_structured_mode_message_decodes(data_fields: dict[str, object], expected: bytes) -> None:
    import json

    document = {
        "specversion": "1.0",
        "id": "e-1",
        "source": "/sources/leadprosper",
        "type": "com.leadprosper.campaign_trigger",
        "time": "2026-11-26T09:30:15Z",
        "datacontenttype": "application/json",
        **data_fields,
    }
    event = from_message(
        json.dumps(document).encode(), {"content-type": "application/cloudevents+json"}
    )
    assert (event.id, event.source, event.data) == ("e-1", "leadprosper", expected)
    assert event.time == datetime(2026, 11, 26, 9, 30, 15, tzinfo=UTC)


@pytest.mark.parametrize(
    "data",
    [b"not json", b"[]", b'{"specversion": "1.0", "id": "x"}', b"\xff\xfe{\x00}\x00"],
)
def test_a_structured_mode_message_that_is_not_one_is_an_envelope_error(data: bytes) -> None:
    with pytest.raises(EnvelopeError):
        from_message(data, {"content-type": "application/cloudevents+json; charset=utf-8"})


def _sdk_to_message(event: WebhookEvent) -> tuple[bytes, dict[str, str]]:
    """The oracle: the same event through the CloudEvents SDK's binary-mode encoder."""
    from cloudevents.conversion import to_binary
    from cloudevents.http import CloudEvent
    from hookpipe.event import PROBLEM_EXTENSION, clip_attribute, rfc3339

    attributes = {
        "id": event.id,
        "source": "/sources/" + event.source,
        "type": event.type,
        "time": rfc3339(event.time),
        "datacontenttype": event.content_type,
    }
    if event.traceparent:
        attributes["traceparent"] = event.traceparent
    if event.problem:
        attributes[PROBLEM_EXTENSION] = clip_attribute(event.problem)
    if event.origin != "webhook":
        attributes["hookpipeorigin"] = event.origin
    headers, body = to_binary(CloudEvent(attributes, event.data), data_marshaller=lambda d: d)
    return bytes(body), {name: str(value) for name, value in headers.items()}


_text = st.text(min_size=1, max_size=60)


@settings(max_examples=500, deadline=None)
@given(
    event=st.builds(
        WebhookEvent,
        id=_text,
        source=_text,
        type=_text,
        time=st.datetimes(timezones=st.timezones()),
        content_type=_text,
        data=st.binary(max_size=200),
        traceparent=st.none() | _text,
        problem=st.none() | st.text(min_size=1, max_size=2000),
        origin=st.sampled_from(["webhook", "reconcile"]),
    )
)
def test_to_message_is_byte_for_byte_what_the_sdk_encodes(event: WebhookEvent) -> None:
    data, attributes = to_message(event)
    expected_data, expected_attributes = _sdk_to_message(event)
    assert data == expected_data
    assert attributes == expected_attributes
    assert list(attributes.items()) == list(expected_attributes.items())  # same order, too


def test_event_ids_are_defined_for_any_text_and_unchanged_for_valid_text() -> None:
    import uuid

    from hookpipe.event import EVENT_ID_NAMESPACE

    assert event_id("leadprosper", "fields:u-1\x1fSOLD") == str(
        uuid.uuid5(EVENT_ID_NAMESPACE, "leadprosper\0fields:u-1\x1fSOLD")
    )
    assert event_id("s", "\ud800") == event_id("s", "\ud800") != event_id("s", "\ud801")


def test_a_ce_attribute_makes_it_binary_mode_whatever_the_content_type() -> None:
    """The Content-Type is the data's, a sender's choice: it never turns the body into the
    envelope (not in any case, not with parameters)."""
    import json

    forged = {"specversion": "1.0", "id": "forged", "source": "/sources/github", "type": "t",
              "time": "9999-01-01T00:00:00Z", "data": {"x": 1}}  # fmt: skip
    for content_type in ("application/cloudevents+json", "Application/CloudEvents+JSON; x=1"):
        event = _event(content_type=content_type, data=json.dumps(forged).encode())
        assert from_message(*to_message(event)) == event
    # Binary mode missing a required attribute is an error, not a fall back to the body.
    _, attributes = to_message(_event(content_type="application/cloudevents+json"))
    del attributes["ce-id"]
    with pytest.raises(EnvelopeError, match="ce-id missing"):
        from_message(json.dumps(forged).encode(), attributes)


def test_an_event_synthesized_by_reconcile_says_so_and_round_trips() -> None:
    event = _event(origin="reconcile")
    data, attributes = to_message(event)
    assert attributes["ce-hookpipeorigin"] == "reconcile"
    assert from_message(data, attributes) == event
    assert "ce-hookpipeorigin" not in to_message(_event())[1]  # a webhook's: no attribute
    with pytest.raises(EnvelopeError, match="hookpipeorigin"):
        from_message(data, {**attributes, "ce-hookpipeorigin": "elsewhere"})
