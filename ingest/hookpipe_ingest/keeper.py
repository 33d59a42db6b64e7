"""Keep an accepted event: publish it, or spool it when Pub/Sub cannot take it now.

* Pub/Sub confirms → ``"published"``.
* Pub/Sub does not confirm in time, fails, or ingest is shedding load, or the publish fails in
  any other way → the event (data and every attribute, exactly as it would have been
  published) is written to the spool → ``"spooled"``, with the reason.
  The drainer publishes it later under the same id, so a publish that was in fact on its way
  when the deadline passed costs a duplicate that the sinks absorb, never a loss.
* Neither → :class:`Unavailable` (503 + Retry-After): the only case a verified webhook is not
  kept, and the sender is told to retry.

After a failed publish, Pub/Sub is skipped for ``bypass_seconds``: events go straight to the spool
instead of each waiting out the publish deadline while Pub/Sub is down. After that one request
probes Pub/Sub while the others keep spooling; its success ends the bypass, its failure starts
another.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from hookpipe.errors import error_class
from hookpipe.event import WebhookEvent, to_message

from hookpipe_ingest.errors import SpoolUnavailable, Unavailable
from hookpipe_ingest.ports import EventPublisher, Spool


@dataclass(frozen=True, slots=True)
class Kept:
    how: Literal["published", "spooled"]
    reason: str | None = None  # why it was spooled, for the request's log line


PUBLISHED = Kept("published")


class EventKeeper:
    def __init__(
        self,
        publisher: EventPublisher,
        spool: Spool | None,
        *,
        bypass_seconds: float,
        retry_after_seconds: int,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._publisher = publisher
        self._spool = spool
        self._bypass_seconds = bypass_seconds
        self._retry_after = retry_after_seconds
        self._monotonic = monotonic
        self._bypass_until = 0.0
        self._probing = False  # a request is finding out whether Pub/Sub is back

    @property
    def bypassing_pubsub(self) -> bool:
        return self._probing or self._monotonic() < self._bypass_until

    async def keep(self, event: WebhookEvent) -> Kept:
        if self._spool is None:
            await self._publisher.publish(event)  # raises Unavailable: 503, as before the spool
            return PUBLISHED
        reason = "Pub/Sub is being bypassed after a failed publish"
        if not self.bypassing_pubsub:
            probe = self._bypass_until > 0
            self._probing = probe
            try:
                await self._publisher.publish(event)
            except Exception as exc:  # whatever stopped it, the event is kept: the spool's job
                self._bypass_until = self._monotonic() + self._bypass_seconds
                reason = f"publish failed: {error_class(exc)}: {exc}"
            else:
                self._bypass_until = 0.0
                return PUBLISHED
            finally:
                if probe:
                    self._probing = False
        data, attributes = to_message(event)
        try:
            await self._spool.put(event.id, data, attributes)
        except SpoolUnavailable as exc:
            raise Unavailable(
                f"neither Pub/Sub nor the spool could take the event ({exc})", self._retry_after
            ) from None
        return Kept("spooled", reason)
