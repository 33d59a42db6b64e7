"""SIGTERM (Cloud Run gives ~10 s): the worker stops taking work, commits what is queued now
rather than when its batch would have filled, and answers those pushes with their real outcome."""

from __future__ import annotations

import signal
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from hookpipe_devstack.services import PythonService

from tests.events import event_envelope
from tests.support import StackHandle, lead, wait_for

pytestmark = pytest.mark.stack


def test_sigterm_commits_queued_pushes_and_refuses_new_ones(stack: StackHandle) -> None:
    # Batches wait 5 s for company and pushes give up after 3 s: only the drain can answer them.
    worker = PythonService(
        "worker",
        stack.stack.state_dir,
        {**stack.stack.service_env(), "HOOKPIPE_BATCH_MAX_DELAY_MS": "5000"},
    )
    worker.start()
    envelopes = [event_envelope(lead()) for _ in range(3)]
    ids = [e["message"]["attributes"]["ce-id"] for e in envelopes]  # type: ignore[index]
    client = httpx.Client(timeout=3)
    try:
        assert client.get(f"{worker.url}/readyz").status_code == 200
        with ThreadPoolExecutor(3) as pool:
            pushes = [
                pool.submit(client.post, f"{worker.url}/pubsub/push", json=e) for e in envelopes
            ]

            def queued() -> bool:
                ready = client.get(f"{worker.url}/readyz").json()
                return bool(ready["queued_rows"] == 3)

            wait_for(queued, 10, "three pushes waiting for their batch")
            assert worker.process is not None
            worker.process.signal(signal.SIGTERM)
            statuses = [p.result().status_code for p in pushes]
        assert statuses == [204, 204, 204]
        assert set(stack.pg_events(ids)) == set(ids)
        try:
            late = client.post(f"{worker.url}/pubsub/push", json=event_envelope(lead())).status_code
        except httpx.TransportError:
            late = None  # already closed: Pub/Sub redelivers elsewhere
        assert late in (503, None)
        assert worker.process.process is not None
        assert worker.process.process.wait(30) is not None
    finally:
        client.close()
        worker.stop()
