"""Decode what a push request carries into a ``Delivery``. Pure: bytes and headers in.

Accepted forms:

* the Pub/Sub push JSON envelope: ``{"message": {"data", "attributes", "messageId",
  "publishTime", "orderingKey"}, "subscription", "deliveryAttempt"}``;
* a binary-mode CloudEvent over HTTP (``ce-*`` headers, body is the data), which is also what an
  unwrapped (``no_wrapper`` + ``write_metadata``) push of a hookpipe event looks like;
* a structured-mode CloudEvent (``application/cloudevents+json``);
* Eventarc's ``google.cloud.pubsub.topic.v1.messagePublished`` CloudEvent (either mode), whose
  data is the push envelope: it is unwrapped so the original message is recovered.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hookpipe.event import ATTRIBUTE_PREFIX, CE_ID, CE_SPECVERSION, CE_TYPE

from hookpipe_worker.errors import UndecodableDelivery

PUBSUB_MESSAGE_PUBLISHED = "google.cloud.pubsub.topic.v1.messagePublished"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One Pub/Sub message as delivered: the original data and attributes, plus metadata."""

    data: bytes
    attributes: dict[str, str]
    message_id: str | None = None
    publish_time: str | None = None
    delivery_attempt: int | None = None
    ordering_key: str | None = None
    subscription: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


def decode_delivery(body: bytes, headers: Mapping[str, str]) -> Delivery:
    """``headers`` with lower-case names."""
    content_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if CE_SPECVERSION in headers:
        return _from_binary_cloudevent(body, headers)
    if content_type == "application/cloudevents+json":
        return _from_structured_cloudevent(_json(body))
    document = _json(body)
    if "message" in document:
        return _from_envelope(document)
    raise UndecodableDelivery("body is neither a Pub/Sub push envelope nor a CloudEvent")


def _json(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except RecursionError:
        raise UndecodableDelivery("push body is nested too deeply") from None
    except ValueError as exc:  # bad UTF-8, not JSON, or a number over 4300 digits
        raise UndecodableDelivery(f"push body is not JSON: {str(exc)[:200]}") from None
    if not isinstance(document, dict):
        raise UndecodableDelivery("push body is not a JSON object")
    return document


def _str_map(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise UndecodableDelivery(f"{what} must be an object of strings")
    return {str(k): v for k, v in value.items()}


def _from_envelope(document: dict[str, Any]) -> Delivery:
    message = document.get("message")
    if not isinstance(message, dict):
        raise UndecodableDelivery("push envelope 'message' is not an object")
    raw = message.get("data", "")
    if not isinstance(raw, str):
        raise UndecodableDelivery("message.data is not a base64 string")
    try:
        data = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise UndecodableDelivery("message.data is not valid base64") from None
    attempt = document.get("deliveryAttempt")
    return Delivery(
        data=data,
        attributes=_str_map(message.get("attributes"), "message.attributes"),
        message_id=_opt_str(message.get("messageId") or message.get("message_id")),
        publish_time=_opt_str(message.get("publishTime") or message.get("publish_time")),
        delivery_attempt=attempt if isinstance(attempt, int) else None,
        ordering_key=_opt_str(message.get("orderingKey")) or None,
        subscription=_opt_str(document.get("subscription")),
    )


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _from_binary_cloudevent(body: bytes, headers: Mapping[str, str]) -> Delivery:
    if headers.get(CE_TYPE) == PUBSUB_MESSAGE_PUBLISHED:
        return _from_envelope(_json(body))
    # Unwrapped pushes carry the message's attributes as headers: ours are the CloudEvent's
    # (ce-*, content-type) and a replay's history (hookpipe-*); the rest are HTTP's own.
    attributes = {k: v for k, v in headers.items() if k.startswith((ATTRIBUTE_PREFIX, "hookpipe-"))}
    if "content-type" in headers:
        attributes["content-type"] = headers["content-type"]
    # With write_metadata, Pub/Sub's own metadata comes as x-goog-pubsub-* headers.
    return Delivery(
        data=body,
        attributes=attributes,
        message_id=headers.get("x-goog-pubsub-message-id") or headers.get(CE_ID),
        publish_time=headers.get("x-goog-pubsub-publish-time"),
        subscription=headers.get("x-goog-pubsub-subscription-name"),
    )


def _from_structured_cloudevent(document: dict[str, Any]) -> Delivery:
    if document.get("type") == PUBSUB_MESSAGE_PUBLISHED:
        data = document.get("data")
        if not isinstance(data, dict):
            raise UndecodableDelivery("messagePublished CloudEvent data is not an envelope")
        return _from_envelope(data)
    attributes: dict[str, str] = {}
    for key, value in document.items():
        if key in ("data", "data_base64"):
            continue
        if key == "datacontenttype":
            attributes["content-type"] = str(value)
        else:
            attributes[f"ce-{key}"] = str(value)
    if "data_base64" in document:
        try:
            data = base64.b64decode(str(document["data_base64"]), validate=True)
        except (binascii.Error, ValueError):
            raise UndecodableDelivery("data_base64 is not valid base64") from None
    elif isinstance(document.get("data"), str):
        data = str(document["data"]).encode()
    else:
        data = json.dumps(document.get("data")).encode()
    return Delivery(data=data, attributes=attributes, message_id=attributes.get(CE_ID))
