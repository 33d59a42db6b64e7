from __future__ import annotations

import base64
import json

import pytest
from hookpipe_worker.delivery import PUBSUB_MESSAGE_PUBLISHED, decode_delivery
from hookpipe_worker.errors import UndecodableDelivery

ATTRS = {
    "ce-id": "e1",
    "ce-source": "/sources/leadprosper",
    "ce-type": "t",
    "ce-time": "2026-11-26T00:00:00Z",
    "ce-specversion": "1.0",
    "content-type": "application/json",
}
DATA = b'{"lp_status":"SOLD"}'
ENVELOPE = {
    "message": {
        "data": base64.b64encode(DATA).decode(),
        "attributes": ATTRS,
        "messageId": "m-1",
        "publishTime": "2026-11-26T00:00:01Z",
        "orderingKey": "k",
    },
    "subscription": "projects/p/subscriptions/hookpipe-worker-push",
    "deliveryAttempt": 3,
}


def test_pubsub_push_envelope_keeps_every_field() -> None:
    delivery = decode_delivery(json.dumps(ENVELOPE).encode(), {"content-type": "application/json"})
    assert (delivery.data, delivery.attributes) == (DATA, ATTRS)
    assert delivery.message_id == "m-1"
    assert delivery.publish_time == "2026-11-26T00:00:01Z"
    assert delivery.delivery_attempt == 3
    assert delivery.ordering_key == "k"
    assert delivery.subscription == "projects/p/subscriptions/hookpipe-worker-push"


def test_emulator_envelope_without_attempt_or_key() -> None:
    envelope = {
        "message": {
            "data": base64.b64encode(DATA).decode(),
            "attributes": ATTRS,
            "message_id": "9",
        },
        "subscription": "s",
    }
    delivery = decode_delivery(json.dumps(envelope).encode(), {})
    assert (delivery.message_id, delivery.delivery_attempt, delivery.ordering_key) == (
        "9",
        None,
        None,
    )


def test_binary_cloudevent_is_the_event_itself() -> None:
    headers = {k: v for k, v in ATTRS.items()}
    delivery = decode_delivery(DATA, headers)
    assert (delivery.data, delivery.attributes, delivery.message_id) == (DATA, ATTRS, "e1")


def test_structured_cloudevent() -> None:
    document = {
        "specversion": "1.0",
        "id": "e1",
        "source": "/sources/leadprosper",
        "type": "t",
        "time": "2026-11-26T00:00:00Z",
        "datacontenttype": "application/json",
        "data_base64": base64.b64encode(DATA).decode(),
    }
    delivery = decode_delivery(
        json.dumps(document).encode(), {"content-type": "application/cloudevents+json"}
    )
    assert (delivery.data, delivery.attributes) == (DATA, ATTRS)


def test_eventarc_message_published_is_unwrapped_in_both_modes() -> None:
    binary = decode_delivery(
        json.dumps(ENVELOPE).encode(),
        {
            "ce-specversion": "1.0",
            "ce-type": PUBSUB_MESSAGE_PUBLISHED,
            "ce-id": "x",
            "ce-source": "//pubsub.googleapis.com/projects/p/topics/hookpipe-events",
            "content-type": "application/json",
        },
    )
    structured = decode_delivery(
        json.dumps(
            {
                "specversion": "1.0",
                "type": PUBSUB_MESSAGE_PUBLISHED,
                "id": "x",
                "source": "s",
                "data": ENVELOPE,
            }
        ).encode(),
        {"content-type": "application/cloudevents+json"},
    )
    for delivery in (binary, structured):
        assert (delivery.data, delivery.attributes, delivery.message_id) == (DATA, ATTRS, "m-1")


@pytest.mark.parametrize(
    ("body", "headers", "message"),
    [
        (b"not json", {}, "not JSON"),
        (b"[1]", {}, "not a JSON object"),
        (b'{"hello": 1}', {}, "neither a Pub/Sub push envelope nor a CloudEvent"),
        (b'{"message": "x"}', {}, "'message' is not an object"),
        (b'{"message": {"data": "%%%"}}', {}, "not valid base64"),
        (b'{"message": {"data": "", "attributes": {"a": 1}}}', {}, "object of strings"),
    ],
)
def test_undecodable_deliveries(body: bytes, headers: dict[str, str], message: str) -> None:
    with pytest.raises(UndecodableDelivery, match=message):
        decode_delivery(body, headers)


def test_unwrapped_push_with_write_metadata_keeps_the_message_metadata() -> None:
    """no_wrapper + write_metadata: the message id, publish time and subscription arrive as
    x-goog-pubsub-* headers; the message id is Pub/Sub's, not the event's ce-id."""
    headers = {
        "ce-specversion": "1.0",
        "ce-id": "event-1",
        "ce-source": "/sources/leadprosper",
        "content-type": "application/json",
        "hookpipe-original-message-id": "m-0",
        "x-goog-pubsub-message-id": "m-42",
        "x-goog-pubsub-publish-time": "2026-11-30T01:02:03.456Z",
        "x-goog-pubsub-subscription-name": "projects/p/subscriptions/hookpipe-worker-push",
        "user-agent": "APIs-Google",
    }
    delivery = decode_delivery(b"{}", headers)
    assert delivery.message_id == "m-42"
    assert delivery.publish_time == "2026-11-30T01:02:03.456Z"
    assert delivery.subscription == "projects/p/subscriptions/hookpipe-worker-push"
    assert delivery.attributes == {
        "ce-specversion": "1.0",
        "ce-id": "event-1",
        "ce-source": "/sources/leadprosper",
        "content-type": "application/json",
        "hookpipe-original-message-id": "m-0",
    }
