"""Dead-letter messages: the attributes the worker adds and the operator tools read, and what a
dead letter says about itself (reason, message, source). Pure. Selecting and replaying them is
the operator's side: ``hookpipe_ops.deadletters``."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hookpipe.event import CE_ID, CE_SOURCE, rfc3339

# Added by Pub/Sub when it forwards after max delivery attempts.
PUBSUB_DELIVERY_COUNT = "CloudPubSubDeadLetterSourceDeliveryCount"
PUBSUB_DEAD_LETTER_ATTRIBUTES = (
    PUBSUB_DELIVERY_COUNT,
    "CloudPubSubDeadLetterSourceSubscription",
    "CloudPubSubDeadLetterSourceSubscriptionProject",
    "CloudPubSubDeadLetterSourceTopicPublishTime",
)
# Added by the worker when it dead-letters a permanent failure (hookpipe_worker.dead_letters).
# Why this failure happened: a replay drops them, and a new failure writes its own.
ERROR_CLASS = "hookpipe-error-class"
ERROR_MESSAGE = "hookpipe-error-message"
WORKER_REVISION = "hookpipe-worker-revision"
DELIVERY_ATTEMPT = "hookpipe-delivery-attempt"
REASON_ATTRIBUTES = (ERROR_CLASS, ERROR_MESSAGE, WORKER_REVISION, DELIVERY_ATTEMPT)
# The message's history: a replay keeps them, so a replayed message that fails again still
# names the message it started as and when it first failed.
ORIGINAL_MESSAGE_ID = "hookpipe-original-message-id"
FIRST_FAILURE_TIME = "hookpipe-first-failure-time"
WORKER_ATTRIBUTES = (*REASON_ATTRIBUTES, ORIGINAL_MESSAGE_ID, FIRST_FAILURE_TIME)
REPLAY_COUNT = "hookpipe-replay-count"
REPLAYED_AT = "hookpipe-replayed-at"
MAX_ATTEMPTS_REASON = "MaxDeliveryAttempts"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    message_id: str
    publish_time: datetime
    data: bytes
    attributes: Mapping[str, str]

    @property
    def reason(self) -> str:
        """The error class: the worker's, or MaxDeliveryAttempts when Pub/Sub forwarded it."""
        if ERROR_CLASS in self.attributes:
            return self.attributes[ERROR_CLASS]
        if PUBSUB_DELIVERY_COUNT in self.attributes:
            return MAX_ATTEMPTS_REASON
        return "Unknown"

    @property
    def message(self) -> str:
        if ERROR_MESSAGE in self.attributes:
            return self.attributes[ERROR_MESSAGE]
        count = self.attributes.get(PUBSUB_DELIVERY_COUNT)
        return f"not acknowledged after {count} delivery attempts" if count else ""

    @property
    def source(self) -> str:
        return self.attributes.get(CE_SOURCE, "").removeprefix("/sources/") or "(none)"

    def age(self, now: datetime) -> timedelta:
        return now - self.publish_time

    def payload_preview(self, limit: int = 200) -> str:
        text = self.data.decode("utf-8", errors="replace")
        with contextlib.suppress(ValueError):
            text = json.dumps(json.loads(text), ensure_ascii=False, separators=(",", ":"))
        return text if len(text) <= limit else text[: limit - 1] + "…"

    def as_dict(self, preview: int = 200) -> dict[str, object]:
        return {
            "message_id": self.message_id,
            "publish_time": self.publish_time.isoformat(),
            "reason": self.reason,
            "error_message": self.message,
            "source": self.source,
            "event_id": self.attributes.get(CE_ID),
            "attributes": dict(self.attributes),
            "payload": self.payload_preview(preview),
        }


# The form of the time attributes (``hookpipe-first-failure-time``, ``…-replayed-at``): the same
# RFC 3339 as the CloudEvent's own time.
timestamp = rfc3339


def parse_timestamp(text: str) -> datetime:
    """ISO 8601, UTC when it has no offset. Raises ValueError."""
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)
