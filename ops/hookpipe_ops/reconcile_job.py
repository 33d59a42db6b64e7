"""One reconcile run of a source, wired: the lease, the ledger, the API client and the Pub/Sub
publisher around :func:`hookpipe_ops.reconcile.reconcile`. The command
(``hookpipe reconcile leadprosper``, :mod:`hookpipe_ops.cli.reconcile`) turns its options into
the typed values here and prints the report; the scheduled job runs the same command.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from google.cloud.pubsub_v1 import PublisherClient
from hookpipe.sources import SourceConfig

from hookpipe_ops.database import connect
from hookpipe_ops.leadprosper_api import LeadProsperApi
from hookpipe_ops.reconcile import Publish, ReconcileReport, reconcile
from hookpipe_ops.reconcile_ledger import Lease, PostgresLedger

PUBLISH_TIMEOUT_SECONDS = 30.0


def confirmed_publish(
    publisher: PublisherClient, topic_path: str, timeout: float = PUBLISH_TIMEOUT_SECONDS
) -> Publish:
    """The :data:`~hookpipe_ops.reconcile.Publish` port on Pub/Sub: a page's messages published
    together, each waited for until ``timeout`` after the first was sent; per message, None once
    confirmed, else why not."""

    def publish(messages: Sequence[tuple[bytes, dict[str, str]]]) -> list[BaseException | None]:
        futures = [publisher.publish(topic_path, data, **attrs) for data, attrs in messages]
        deadline = time.monotonic() + timeout
        outcomes: list[BaseException | None] = []
        for future in futures:
            try:
                future.result(max(deadline - time.monotonic(), 0.1))
            except Exception as exc:  # not confirmed: the run reports it and stops
                outcomes.append(exc)
            else:
                outcomes.append(None)
        return outcomes

    return publish


@dataclass(frozen=True)
class ReconcileRun:
    """What one run reconciles, and against what."""

    project: str
    source: str
    config: SourceConfig
    start: datetime
    end: datetime
    campaigns: tuple[str, ...]
    dry_run: bool
    resume: bool
    events_topic: str
    database_url: str
    database_url_named: str  # where the URL came from, for a message that never shows it


def run_reconcile(run: ReconcileRun, api: LeadProsperApi) -> ReconcileReport:
    """Take the source's lease, reconcile the window, give the lease back. Raises
    :class:`~hookpipe_ops.reconcile_ledger.LeaseHeld` (having done nothing) when another run
    holds it."""
    config = run.config
    assert config.current_state is not None  # the command checked: figures need it
    conn = connect(run.database_url, run.database_url_named)
    conn.autocommit = True  # the lease is seen by other runs at once; reads hold no transaction
    holder = f"{socket.gethostname()}:{os.getpid()}:{datetime.now(UTC):%H%M%S}"
    lease = Lease(conn, f"reconcile:{run.source}", holder)
    with conn, PublisherClient() as publisher:
        lease.take()
        try:
            return reconcile(
                api,
                run.source,
                config,
                start=run.start,
                end=run.end,
                campaigns=run.campaigns,
                ledger=PostgresLedger(
                    conn, run.source, config.current_state.table, config.current_state.key
                ),
                publish=confirmed_publish(
                    publisher, publisher.topic_path(run.project, run.events_topic)
                ),
                now=lambda: datetime.now(UTC),
                dry_run=run.dry_run,
                resume=run.resume,
                on_page=lease.renew,
            )
        finally:
            lease.give_back()
