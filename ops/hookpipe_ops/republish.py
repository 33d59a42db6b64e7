"""Republishing one dead letter, the one way the replay loop (:mod:`hookpipe_ops.replay`) does it
for both of its sources, the dead-letter subscription and the archive:

* **paced** to ``rate`` messages a second (None: as fast as Pub/Sub confirms);
* **stamped** with ``replay_attributes`` (the CloudEvent, its history, no failure reason);
* **confirmed**: the call returns only once Pub/Sub has the message (its new message id), or
  raises :class:`RepublishFailed`; the loop then has its source ack the dead letter or stamp its
  archive row, never before;
* **audited**: one ``dlq.replay`` JSON line per replayed message on the ``hookpipe.audit``
  logger (stderr, docs/operations.md), saying where it was replayed from.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from google.cloud.pubsub_v1 import PublisherClient
from hookpipe.deadletters import REPLAY_COUNT, DeadLetter
from hookpipe.errors import error_class
from hookpipe.event import CE_ID

from hookpipe_ops.deadletters import replay_attributes
from hookpipe_ops.errors import RepublishFailed

audit = logging.getLogger("hookpipe.audit")
CONFIRM_TIMEOUT_SECONDS = 30.0

type ReplayedFrom = Literal["subscription", "archive"]


@dataclass
class Republisher:
    publisher: PublisherClient
    topic: str  # projects/…/topics/…
    rate: float | None  # messages a second; None: unpaced
    replayed_from: ReplayedFrom
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    confirm_timeout: float = CONFIRM_TIMEOUT_SECONDS
    _next_at: float = field(default=float("-inf"), init=False)

    def wait_turn(self) -> None:
        """Sleep until the pace allows the next republish."""
        self.sleep(max(0.0, self._next_at - self.clock()))
        if self.rate:
            self._next_at = max(self._next_at, self.clock()) + 1.0 / self.rate

    def republish(self, letter: DeadLetter) -> str:
        """Publish ``letter`` again, wait for Pub/Sub's confirmation, write its audit line;
        return the new message id. Call :meth:`wait_turn` first."""
        moment = self.now()
        attributes = replay_attributes(letter, moment)
        try:
            new_id = str(
                self.publisher.publish(self.topic, letter.data, **attributes).result(
                    timeout=self.confirm_timeout
                )
            )
        except Exception as exc:  # the caller counts it; the dead letter stays
            raise RepublishFailed(error_class(exc)) from exc
        audit.info(
            "replayed",
            extra={
                "json_fields": {
                    "event": "dlq.replay",
                    "replayed_from": self.replayed_from,
                    "dead_letter_message_id": letter.message_id,
                    "new_message_id": new_id,
                    "event_id": letter.attributes.get(CE_ID),
                    "reason": letter.reason,
                    "source": letter.source,
                    "replay_count": attributes[REPLAY_COUNT],
                    "replayed_at": moment.isoformat(),
                }
            },
        )
        return new_id
