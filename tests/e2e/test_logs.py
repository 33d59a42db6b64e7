"""What ingest and worker log: one canonical JSON line per request in Cloud Logging's format,
correlated by trace, and never a secret, token or signature."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support import StackHandle, lead, wait_for

pytestmark = pytest.mark.stack
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def _lines(stack: StackHandle, service: str) -> list[dict[str, Any]]:
    path = Path(stack.stack.state_dir) / "logs" / f"{service}.log"
    entries = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            entries.append(json.loads(line))
    return entries


def test_one_canonical_line_per_request_correlated_by_trace(stack: StackHandle) -> None:
    traceparent = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
    response = stack.post(lead(), headers={"traceparent": traceparent})
    event_id = response.json()["event_id"]
    stack.wait_committed([event_id])

    def line(service: str) -> dict[str, Any] | None:
        return next(
            (
                e
                for e in _lines(stack, service)
                if e.get("event_id") == event_id and e.get("event") in ("webhook", "push")
            ),
            None,
        )

    ingest = wait_for(lambda: line("ingest"), what="ingest's line")
    worker = wait_for(lambda: line("worker"), what="worker's line")
    for entry in (ingest, worker):
        assert (
            entry["logging.googleapis.com/trace"]
            == f"projects/{stack.project_id}/traces/{TRACE_ID}"
        )
        assert entry["severity"] == "INFO"
        assert entry["source"] == "leadprosper"
    assert (ingest["outcome"], ingest["httpRequest"]["status"]) == ("accepted", 202)
    assert (worker["outcome"], worker["httpRequest"]["status"]) == ("committed", 204)
    assert ingest["latency_ms"] > 0
    assert ingest["bytes"] > 0


def test_logs_never_contain_a_token(stack: StackHandle) -> None:
    lookalike = stack.token[:-4] + "ABCD"
    marker = lead()
    stack.post(lead(), token=lookalike)  # wrong token: 401
    stack.post(lead(), token="", params={"token": stack.token})  # token in the URL
    stack.post(lead(), token="", params={"token": lookalike})  # wrong one in the URL
    stack.post(lead(), token=stack.token, headers={})  # token in the header
    event_id = stack.post(marker).json()["event_id"]
    stack.wait_committed([event_id])
    wait_for(lambda: any(e.get("event_id") == event_id for e in _lines(stack, "worker")))
    rejected = [e for e in _lines(stack, "ingest") if e.get("outcome") == "rejected"]
    assert any("does not match" in e["reason"] for e in rejected)  # the reason is logged...
    # ...but no log line of any service, from any test of this session, holds a token.
    for path in (Path(stack.stack.state_dir) / "logs").glob("*.log"):
        text = path.read_text(errors="replace")
        assert stack.token not in text, path.name
        assert lookalike not in text, path.name
