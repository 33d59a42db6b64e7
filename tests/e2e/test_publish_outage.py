"""Pub/Sub unreachable: ingest answers 503 + Retry-After within its deadline and publishes
nothing; once Pub/Sub is back, the senders' retries land exactly once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.support import StackHandle, lead, wait_for

pytestmark = pytest.mark.stack


def test_publish_failure_is_503_and_the_retry_lands_exactly_once(stack: StackHandle) -> None:
    bodies = [lead() for _ in range(5)]
    stack.stack.pubsub.stop()
    try:
        # Concurrent senders: each waits at most ingest's publish deadline, not one after another.
        with ThreadPoolExecutor(len(bodies)) as pool:
            responses = list(pool.map(stack.post, bodies))
        for response in responses:
            assert response.status_code == 503, response.text
            assert int(response.headers["Retry-After"]) > 0
            assert "Pub/Sub" in response.json()["error"]
    finally:
        stack.stack.restart_pubsub()

    accepted: dict[str, str] = {}

    def retries_accepted() -> bool:
        for body in bodies:
            key = body["lp_request_uuid"]
            if key not in accepted:
                response = stack.post(body)
                assert response.status_code in (202, 503), response.text
                if response.status_code == 202:
                    accepted[key] = response.json()["event_id"]
        return len(accepted) == len(bodies)

    wait_for(retries_accepted, 90, "ingest to accept the retries")
    event_ids = list(accepted.values())
    stack.wait_committed(event_ids)
    assert len(stack.pg_events(event_ids)) == len(bodies)
    assert sorted(r["event_id"] for r in stack.bq_rows("events", event_ids)) == sorted(event_ids)
    # A retry of an already-accepted webhook is accepted again with the same id: one row still.
    first_id = accepted[bodies[0]["lp_request_uuid"]]
    again = stack.post(bodies[0])
    assert again.json()["event_id"] == first_id
    assert len(stack.pg_events([first_id])) == 1
    assert len(stack.bq_rows("events", [first_id])) == 1
