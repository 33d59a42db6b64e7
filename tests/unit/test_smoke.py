"""`hookpipe smoke`'s row wait, with a fixed clock: it finds a late row, and gives up on time."""

from __future__ import annotations

import pytest
from hookpipe_ops.errors import SmokeFailed
from hookpipe_ops.smoke import Target, wait_for_row


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class RowAfter:
    """A sink whose row shows up on the n-th look."""

    name = "the sink"

    def __init__(self, looks: int) -> None:
        self.looks, self.remaining = 0, looks

    def has_event(self, event_id: str) -> bool:
        self.looks += 1
        return self.looks >= self.remaining


def test_waits_with_backoff_until_the_row_is_committed() -> None:
    clock, sink = Clock(), RowAfter(looks=6)
    assert wait_for_row(sink, "ev-1", 60, clock, clock.sleep) == "event ev-1 is in the sink"
    assert sink.looks == 6
    assert clock.sleeps == [0.5, 1.0, 2.0, 4.0, 5.0]  # doubling, capped at 5 s


def test_gives_up_at_the_deadline_naming_event_and_sink() -> None:
    clock, sink = Clock(), RowAfter(looks=10**6)
    with pytest.raises(SmokeFailed, match=r"event ev-2 not in the sink after 7s"):
        wait_for_row(sink, "ev-2", 7, clock, clock.sleep)
    assert clock.now == 7  # the last pause is cut to the deadline, not past it


def test_webhook_url_joins_base_and_source() -> None:
    assert Target("https://x.run.app/", "t").webhook_url == "https://x.run.app/webhooks/leadprosper"


def test_no_google_credentials_is_a_failed_check(monkeypatch: pytest.MonkeyPatch) -> None:
    from hookpipe_ops.smoke import BigQueryRows

    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/credentials.json")
    with pytest.raises(SmokeFailed, match="no credentials to read BigQuery"):
        BigQueryRows("my-project.hookpipe.raw_events")


def test_a_table_id_that_is_not_project_dataset_table_is_refused() -> None:
    from hookpipe_ops.smoke import BigQueryRows

    with pytest.raises(SmokeFailed, match=r"is not PROJECT\.DATASET\.TABLE"):
        BigQueryRows("raw_events; DROP TABLE x")
