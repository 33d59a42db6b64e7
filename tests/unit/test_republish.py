"""The one republish both replays use (``hookpipe_ops.republish``), with a tiny fake publisher:
paced, stamped, confirmed before it returns, one audit line each; a publish Pub/Sub does not
confirm raises and writes no audit line."""

from __future__ import annotations

import json
import logging
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import Any

import pytest
from hookpipe.deadletters import DeadLetter
from hookpipe_ops.republish import Republisher, RepublishFailed

NOW = datetime(2026, 12, 3, 12, tzinfo=UTC)


class FakePublisher:
    def __init__(self, fail: bool = False) -> None:
        self.published: list[tuple[str, bytes, dict[str, str]]] = []
        self.fail = fail

    def publish(self, topic: str, data: bytes, **attributes: str) -> Future[str]:
        future: Future[str] = Future()
        if self.fail:
            future.set_exception(TimeoutError("not confirmed"))
        else:
            self.published.append((topic, data, attributes))
            future.set_result(f"new-{len(self.published)}")
        return future


def letter(n: int) -> DeadLetter:
    attributes = {"ce-id": f"e{n}", "ce-source": "/sources/leadprosper",
                  "hookpipe-error-class": "RowRejected"}  # fmt: skip
    return DeadLetter(f"m{n}", NOW, b"{}", attributes)


def republisher(publisher: FakePublisher, rate: float | None, clock: list[float]) -> Republisher:
    def sleep(seconds: float) -> None:
        clock[0] += seconds

    return Republisher(publisher, "projects/p/topics/t", rate, "archive",  # type: ignore[arg-type]
                       now=lambda: NOW, clock=lambda: clock[0], sleep=sleep)  # fmt: skip


def test_republishes_are_paced_stamped_and_audited(caplog: pytest.LogCaptureFixture) -> None:
    clock = [100.0]
    publisher = FakePublisher()
    replay = republisher(publisher, 2.0, clock)
    started = []
    with caplog.at_level(logging.INFO, logger="hookpipe.audit"):
        for n in range(3):
            replay.wait_turn()
            started.append(clock[0])
            assert replay.republish(letter(n)) == f"new-{n + 1}"
    assert started == [100.0, 100.5, 101.0]  # two a second
    _, _, attributes = publisher.published[0]
    assert attributes["hookpipe-replay-count"] == "1"
    assert "hookpipe-error-class" not in attributes
    lines: list[dict[str, Any]] = [r.json_fields for r in caplog.records]  # type: ignore[attr-defined]
    assert [(x["event"], x["event_id"], x["replayed_from"]) for x in lines] == [
        ("dlq.replay", f"e{n}", "archive") for n in range(3)
    ]
    assert json.dumps(lines)  # what the structured handler writes


def test_a_republish_pubsub_does_not_confirm_raises_and_is_not_audited(
    caplog: pytest.LogCaptureFixture,
) -> None:
    replay = republisher(FakePublisher(fail=True), None, [0.0])
    with caplog.at_level(logging.INFO, logger="hookpipe.audit"), pytest.raises(RepublishFailed):
        replay.republish(letter(1))
    assert caplog.records == []
