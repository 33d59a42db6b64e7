"""Large events on the real stack. JSON-escaped as BigQuery's client sends them, non-ASCII text
triples: a batch of them is split into insertAll requests under the 10 MB limit, and a row too
large on its own lands marked, with its payload in Postgres only. (The emulator does not enforce
the limit; tests/unit/test_bigquery_limits.py plays it.)"""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.events import event_envelope
from tests.support import StackHandle

pytestmark = pytest.mark.stack
EMOJI_PER_WEBHOOK = 260_000  # ~1 MB as UTF-8 (under ingest's 1 MiB), ~3 MB escaped for BigQuery


def _bq(stack: StackHandle, event_ids: list[str]) -> dict[str, dict[str, Any]]:
    rows = stack.bq_rows("events", event_ids, columns="payload, problems")
    return {row["event_id"]: row for row in rows}


def test_a_burst_of_large_non_ascii_webhooks_lands_whole_in_both_sinks(
    stack: StackHandle,
) -> None:
    bodies = [
        json.dumps(
            {"lp_request_uuid": str(uuid.uuid4()), "note": "😀" * EMOJI_PER_WEBHOOK},
            ensure_ascii=False,
        ).encode()
        for _ in range(8)
    ]
    with ThreadPoolExecutor(8) as pool:  # at once, so that the worker batches them together
        responses = list(pool.map(stack.post, bodies))
    assert [r.status_code for r in responses] == [202] * 8, responses[0].text
    ids = [r.json()["event_id"] for r in responses]

    stack.wait_committed(ids, timeout=120)

    pg = stack.pg_events(ids)
    bq = _bq(stack, ids)
    assert set(bq) == set(ids)
    for event_id in ids:
        assert len(pg[event_id][3]["note"]) == EMOJI_PER_WEBHOOK
        assert len(bq[event_id]["payload"]["note"]) == EMOJI_PER_WEBHOOK
        assert bq[event_id]["problems"] is None


def test_an_event_too_large_for_a_bigquery_row_lands_marked(stack: StackHandle) -> None:
    """Ingest accepts up to a source's max_body_bytes (at most 9 MiB); this one, pushed to the
    worker directly, is 3.2 MB of emoji: ~38 MB escaped, far over insertAll's 10 MB."""
    envelope = event_envelope({"lp_request_uuid": "LP-large", "note": "😀" * 800_000})
    event_id = envelope["message"]["attributes"]["ce-id"]

    response = stack.http.post(f"{stack.stack.worker.url}/pubsub/push", json=envelope, timeout=60)

    assert response.status_code == 204, response.text
    [(_, _, _, payload)] = stack.pg_events([event_id]).values()
    assert len(payload["note"]) == 800_000  # Postgres keeps all of it
    [(problem,)] = stack.pg("SELECT problems FROM hookpipe.events WHERE event_id = %s", [event_id])
    assert "Postgres only" in problem[-1]["reason"]
    row = _bq(stack, [event_id])[event_id]
    assert row["payload"] is None
    assert "Postgres only" in row["problems"][-1]["reason"]
    assert stack.pg(
        "SELECT lead_id FROM hookpipe.leadprosper_leads WHERE lead_id = 'LP-large'"
    ) == [("LP-large",)]
