"""What the worker says about a dead letter, without I/O: the attributes it publishes one with
(:func:`reason_attributes`, for the dead-letter topic) and the record the archive keeps of one
(:func:`archive_record`, for ``hookpipe.dead_letters``). The adapters that publish and write
them are in :mod:`hookpipe_worker.sinks`; the attribute names are the contract's
(:mod:`hookpipe.deadletters`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime

from hookpipe.deadletters import (
    DELIVERY_ATTEMPT,
    ERROR_CLASS,
    ERROR_MESSAGE,
    FIRST_FAILURE_TIME,
    ORIGINAL_MESSAGE_ID,
    PUBSUB_DELIVERY_COUNT,
    WORKER_REVISION,
    DeadLetter,
    parse_timestamp,
    timestamp,
)
from hookpipe.errors import error_class
from hookpipe.event import CE_ID, MAX_ATTRIBUTE_BYTES, clip_attribute
from hookpipe.problems import storable
from hookpipe.text import is_ascii_digits

from hookpipe_worker.delivery import Delivery


def reason_attributes(
    delivery: Delivery, exc: BaseException, revision: str, now: datetime
) -> dict[str, str]:
    """The attributes that say why a message was dead-lettered. Pure."""
    attributes = {
        ERROR_CLASS: error_class(exc),
        ERROR_MESSAGE: clip_attribute(str(exc) or error_class(exc), MAX_ATTRIBUTE_BYTES),
        WORKER_REVISION: revision,
        # A replayed message that fails again keeps the history a replay carries over: when it
        # first failed, and the first message it was.
        FIRST_FAILURE_TIME: delivery.attributes.get(FIRST_FAILURE_TIME) or timestamp(now),
    }
    if delivery.delivery_attempt is not None:
        attributes[DELIVERY_ATTEMPT] = str(delivery.delivery_attempt)
    original = delivery.attributes.get(ORIGINAL_MESSAGE_ID) or delivery.message_id
    if original:
        attributes[ORIGINAL_MESSAGE_ID] = original
    return attributes


@dataclass(frozen=True, slots=True)
class ArchivedDeadLetter:
    dead_letter_id: str
    event_id: str | None
    source: str | None
    error_class: str
    reason: str
    delivery_attempts: int | None
    first_failure_time: datetime | None
    dead_lettered_at: datetime
    original_message_id: str | None
    attributes: dict[str, str]
    data: bytes


def _time(text: str | None) -> datetime | None:
    try:
        return parse_timestamp(text) if text else None
    except ValueError:
        return None


def _int(text: str | None) -> int | None:
    return int(text) if text and is_ascii_digits(text) and len(text) < 10 else None


def archive_record(delivery: Delivery, now: datetime) -> ArchivedDeadLetter:
    """What the archive stores for one pushed dead letter. Pure; never raises on content."""
    attributes = {k: str(v) for k, v in storable(dict(delivery.attributes))[0].items()}
    dead_lettered_at = _time(delivery.publish_time) or now
    # Without a message id (an unwrapped push), the content identifies the dead letter.
    dead_letter_id = (
        delivery.message_id
        or hashlib.sha256(
            delivery.data + json.dumps(attributes, sort_keys=True).encode()
        ).hexdigest()
    )
    letter = DeadLetter(dead_letter_id, dead_lettered_at, delivery.data, attributes)
    source = letter.source
    return ArchivedDeadLetter(
        dead_letter_id=dead_letter_id,
        event_id=attributes.get(CE_ID),
        source=None if source == "(none)" else source,
        error_class=letter.reason,
        reason=letter.message or letter.reason,
        delivery_attempts=_int(
            attributes.get(PUBSUB_DELIVERY_COUNT) or attributes.get(DELIVERY_ATTEMPT)
        ),
        first_failure_time=_time(attributes.get(FIRST_FAILURE_TIME)) or dead_lettered_at,
        dead_lettered_at=dead_lettered_at,
        original_message_id=attributes.get(ORIGINAL_MESSAGE_ID),
        attributes=attributes,
        data=delivery.data,
    )
