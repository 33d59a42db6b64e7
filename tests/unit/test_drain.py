"""One drain pass with an in-memory spool (the real one is tested on fake-gcs-server in
tests/e2e/test_spool.py): each object fails alone, and nothing unconfirmed is deleted."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from hookpipe.spool import object_name
from hookpipe_ingest.drain import drain
from hookpipe_ingest.spool import SpooledObject, encode


class MemorySpool:
    def __init__(self, objects: dict[str, bytes]) -> None:
        self.objects = objects
        self.listed = 0  # names the pass has taken from the listing so far

    def list(self, limit: int | None = None, *, start_at: str = "") -> Iterator[SpooledObject]:
        names = sorted(self.objects)
        names = [n for n in names if n >= start_at] + [n for n in names if n < start_at]
        for name in names[:limit]:
            self.listed += 1
            yield SpooledObject(name, 1, datetime(2026, 11, 30, tzinfo=UTC))

    def read(self, item: SpooledObject) -> bytes | None:
        return self.objects.get(item.name)

    def delete(self, item: SpooledObject) -> None:
        self.objects.pop(item.name, None)


def test_a_failure_on_one_object_never_stops_the_pass() -> None:
    spool = MemorySpool(
        {
            object_name("a"): encode(b"1", {"ce-id": "a"}),
            object_name("b"): encode(b"2", {"ce-id": "b", "x": "refused"}),
            object_name("c"): encode(b"3", {"ce-id": "c"}),
            object_name("d"): b"not a spooled message",
        }
    )
    published: list[Mapping[str, str]] = []

    def publish(data: bytes, attributes: Mapping[str, str]) -> None:
        if attributes.get("x") == "refused":
            raise ValueError("attribute refused")  # anything, not only Pub/Sub's errors
        published.append(attributes)

    report = drain(spool, publish, parallelism=2)  # type: ignore[arg-type]
    assert sorted(a["ce-id"] for a in published) == ["a", "c"]
    assert (report.published, report.failed, dict(report.errors)) == (2, 1, {"ValueError": 1})
    assert report.bad == [object_name("d")]
    # What was not confirmed, and what is not ours, stays for the next pass or a person.
    assert sorted(spool.objects) == [object_name("b"), object_name("d")]
    # The report is what the drainer logs as it is: every field plain JSON.
    assert json.loads(json.dumps(asdict(report)))["errors"] == {"ValueError": 1}


def test_an_object_another_drainer_took_is_gone_not_failed() -> None:
    spool = MemorySpool({object_name("a"): encode(b"1", {"ce-id": "a"})})
    taken: Any = spool.objects.copy()
    spool.objects.clear()  # listed by us, then drained by someone else

    class Listed(MemorySpool):
        def list(self, limit: int | None = None, *, start_at: str = "") -> Iterator[SpooledObject]:
            yield from MemorySpool(taken).list(limit, start_at=start_at)

    report = drain(Listed(spool.objects), lambda d, a: None, parallelism=1)  # type: ignore[arg-type]
    assert (report.gone, report.published, report.failed) == (1, 0, 0)


def test_stats_count_what_waits_and_the_oldest_ones_age() -> None:
    from hookpipe_ingest.drain import stats

    now = datetime(2026, 11, 30, 0, 10, tzinfo=UTC)
    assert stats(MemorySpool({}), now) == {"objects": 0, "oldest_age_seconds": None}  # type: ignore[arg-type]
    waiting = MemorySpool({object_name("a"): b"", object_name("b"): b""})
    assert stats(waiting, now) == {"objects": 2, "oldest_age_seconds": 600.0}  # type: ignore[arg-type]


def _backlog(count: int) -> MemorySpool:
    return MemorySpool(
        {object_name(f"e{n:05d}"): encode(b"x", {"ce-id": str(n)}) for n in range(count)}
    )


def test_a_pass_takes_the_listing_as_it_goes_with_a_bounded_window() -> None:
    """It once listed the whole bucket and submitted every object before publishing any: a
    backlog of 250k objects ran the 512 MiB job out of memory. Now the listing runs at most
    LIST_AHEAD names ahead of what is drained, and at most ``parallelism`` are in flight."""
    import threading

    from hookpipe_ingest.drain import LIST_AHEAD

    spool = _backlog(3 * LIST_AHEAD)
    lock = threading.Lock()
    in_flight, most, published, furthest_ahead = 0, 0, 0, 0

    def publish(data: bytes, attributes: Mapping[str, str]) -> None:
        nonlocal in_flight, most, published, furthest_ahead
        with lock:
            in_flight += 1
            most = max(most, in_flight)
            furthest_ahead = max(furthest_ahead, spool.listed - published)
        with lock:
            in_flight -= 1
            published += 1

    report = drain(spool, publish, parallelism=4)  # type: ignore[arg-type]
    assert report.published == 3 * LIST_AHEAD
    assert spool.objects == {}
    assert most <= 4
    assert furthest_ahead <= LIST_AHEAD + 4 + 2  # the buffer, the window, one in hand


def test_no_object_is_started_after_the_deadline_and_the_rest_waits() -> None:
    spool = _backlog(100)
    now = [0.0]

    def publish(data: bytes, attributes: Mapping[str, str]) -> None:
        now[0] += 1.0  # each publish takes a second

    report = drain(spool, publish, parallelism=1, deadline=30.0, clock=lambda: now[0])  # type: ignore[arg-type]
    assert report.stopped_at_deadline
    assert report.published == 30
    assert len(spool.objects) == 70  # left for the next pass


def test_a_pass_starts_where_it_is_told_and_wraps_around() -> None:
    spool = _backlog(10)
    order: list[str] = []
    drain(  # type: ignore[arg-type]
        spool, lambda d, a: order.append(a["ce-id"]), parallelism=1, start_at=object_name("e00007")
    )
    assert order == ["7", "8", "9", "0", "1", "2", "3", "4", "5", "6"]


def test_a_listing_that_fails_midway_fails_the_pass_after_what_it_started() -> None:
    import pytest
    from hookpipe_ingest.errors import SpoolUnavailable

    class Failing(MemorySpool):
        def list(self, limit: int | None = None, *, start_at: str = "") -> Iterator[SpooledObject]:
            yield from list(super().list(limit, start_at=start_at))[:3]
            raise SpoolUnavailable("spool list failed: ServiceUnavailable")

    spool = Failing(_backlog(10).objects)
    with pytest.raises(SpoolUnavailable):
        drain(spool, lambda d, a: None, parallelism=2)  # type: ignore[arg-type]
    assert len(spool.objects) == 7  # the three listed were drained before it gave up
