"""The spool on the real stack (Pub/Sub emulator, fake-gcs-server, drainer): once credentials
verify, a webhook is kept — published, or spooled while Pub/Sub cannot take it — and lands exactly
once; 503 only when neither can take it."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from google.cloud.pubsub_v1 import PublisherClient
from hookpipe.event import to_message
from hookpipe_ingest.drain import drain
from hookpipe_ingest.spool import GcsSpool

from tests.events import webhook_event
from tests.support import StackHandle, lead, wait_for

pytestmark = pytest.mark.stack
SENDERS = 8


def _spool(stack: StackHandle) -> GcsSpool:
    return GcsSpool(
        stack.stack.storage.bucket,
        project_id=stack.project_id,
        timeout_seconds=10,
        emulator_host=stack.stack.storage.url,
    )


def _post_all(stack: StackHandle, bodies: list[dict[str, Any]]) -> list[httpx.Response]:
    with ThreadPoolExecutor(SENDERS) as pool:
        return list(pool.map(stack.post, bodies))


def _lands_once(stack: StackHandle, responses: list[httpx.Response], timeout: float) -> None:
    assert [r.status_code for r in responses] == [202] * len(responses), [
        r.text for r in responses if r.status_code != 202
    ]
    ids = [r.json()["event_id"] for r in responses]
    stack.wait_committed(ids, timeout=timeout)
    assert len(stack.pg_events(ids)) == len(set(ids))
    view = [r["event_id"] for r in stack.bq_rows("events", ids)]
    assert sorted(view) == sorted(set(ids)), "BigQuery's view: every event exactly once"
    wait_for(lambda: not list(_spool(stack).list()), 30, "the spool to be drained")


@contextmanager
def _env(stack: StackHandle) -> Iterator[None]:
    """The emulator hosts in this process's environment, for the Pub/Sub and GCS clients."""
    import os

    saved = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ["STORAGE_EMULATOR_HOST"] = stack.stack.storage.url
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("STORAGE_EMULATOR_HOST", None)
        else:
            os.environ["STORAGE_EMULATOR_HOST"] = saved


def test_pubsub_paused_30s_every_webhook_is_202_and_lands_once(stack: StackHandle) -> None:
    bodies = [lead() for _ in range(300)]
    emulator = stack.stack.pubsub.process
    assert emulator is not None
    spooled_seen: list[int] = []
    with _env(stack):
        emulator.signal(signal.SIGSTOP)
        paused_at = time.monotonic()
        try:
            responses = _post_all(stack, bodies)
            spooled_seen.append(len(list(_spool(stack).list())))
            time.sleep(max(0.0, 30 - (time.monotonic() - paused_at)))  # the fault: 30 s paused
        finally:
            emulator.signal(signal.SIGCONT)
        assert spooled_seen[0] > 0, "the spool was used while Pub/Sub was paused"
        _lands_once(stack, responses, timeout=60)


def test_pubsub_killed_and_restarted_every_webhook_is_202_and_lands_once(
    stack: StackHandle,
) -> None:
    bodies = [lead() for _ in range(300)]
    with _env(stack):
        stack.stack.pubsub.stop()
        try:
            responses = _post_all(stack, bodies)
        finally:
            stack.stack.restart_pubsub()
        _lands_once(stack, responses, timeout=60)


def test_pubsub_and_spool_both_down_is_503_and_the_retry_lands_once(stack: StackHandle) -> None:
    bodies = [lead() for _ in range(5)]
    stack.stack.pubsub.stop()
    stack.stack.storage.stop()
    try:
        responses = _post_all(stack, bodies)
        for response in responses:
            assert response.status_code == 503, response.text
            assert int(response.headers["Retry-After"]) > 0
            assert "neither Pub/Sub nor the spool" in response.json()["error"]
    finally:
        stack.stack.storage.start()
        stack.stack.restart_pubsub()
    with _env(stack):
        retries: list[httpx.Response] = []

        def retried() -> bool:
            retries[:] = _post_all(stack, bodies)
            return all(r.status_code == 202 for r in retries)

        wait_for(retried, 60, "the senders' retries to be accepted")
        _lands_once(stack, retries, timeout=60)


def _spool_events(stack: StackHandle, count: int) -> list[str]:
    """Put ``count`` events straight into the spool, as ingest would; their ids."""
    ids = []
    spool = _spool(stack)
    import asyncio

    async def put_all() -> None:
        for _ in range(count):
            event = webhook_event(lead())
            data, attributes = to_message(event)
            await spool.put(event.id, data, attributes)
            ids.append(event.id)

    asyncio.run(put_all())
    return ids


@contextmanager
def _no_background_drainer(stack: StackHandle) -> Iterator[None]:
    stack.stack.drainer.stop()
    try:
        yield
    finally:
        stack.stack.start_drainer()


def _publisher(stack: StackHandle) -> Callable[[bytes, Mapping[str, str]], None]:
    client = PublisherClient()
    topic = client.topic_path(stack.project_id, "hookpipe-events")

    def publish(data: bytes, attributes: Mapping[str, str]) -> None:
        client.publish(topic, data, **attributes).result(timeout=10)

    return publish


def _drain_pass(stack: StackHandle, **env: str) -> subprocess.CompletedProcess[str]:
    """One ``hookpipe-spool drain`` pass, as the Cloud Run job runs it."""
    return subprocess.run(
        [sys.executable, "-m", "hookpipe_ingest.drain", "drain"],
        env={**stack.stack.service_env(), "PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_drainer_killed_between_publish_and_delete_duplicates_nothing_downstream(
    stack: StackHandle,
) -> None:
    with _env(stack), _no_background_drainer(stack):
        ids = _spool_events(stack, 20)
        publish = _publisher(stack)

        def publish_then_die(data: bytes, attributes: Mapping[str, str]) -> None:
            publish(data, attributes)
            raise TimeoutError("killed after the publish, before the delete")

        first = drain(_spool(stack), publish_then_die, parallelism=4)
        assert (first.published, first.failed) == (0, 20)
        assert len(list(_spool(stack).list())) == 20  # nothing deleted: all still kept
        second = drain(_spool(stack), publish, parallelism=4)
        assert (second.published, second.failed) == (20, 0)
        assert list(_spool(stack).list()) == []
        stack.wait_committed(ids)
        # Every event was published twice; each is once in both sinks.
        wait_for(lambda: len(stack.bq_rows("raw_events", ids)) >= 20, what="BigQuery rows")
        assert len(stack.pg_events(ids)) == 20
        assert sorted(r["event_id"] for r in stack.bq_rows("events", ids)) == sorted(ids)


def test_two_drainers_racing_lose_and_duplicate_nothing(stack: StackHandle) -> None:
    with _env(stack), _no_background_drainer(stack):
        ids = _spool_events(stack, 200)
        start = threading.Barrier(2)

        def run_drainer() -> subprocess.CompletedProcess[str]:
            start.wait()
            return _drain_pass(stack)

        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(lambda _: run_drainer(), range(2)))
        for result in results:
            assert result.returncode == 0, result.stderr + result.stdout
        assert list(_spool(stack).list()) == []
        stack.wait_committed(ids)
        assert len(stack.pg_events(ids)) == 200
        assert sorted(r["event_id"] for r in stack.bq_rows("events", ids)) == sorted(ids)


def test_a_drain_pass_that_cannot_publish_exits_non_zero_and_deletes_nothing(
    stack: StackHandle,
) -> None:
    """The Cloud Run job's failed execution is how an operator hears of a drain that cannot
    publish (beside the undrained-spool alert); the objects stay for the next pass."""
    with _env(stack), _no_background_drainer(stack):
        ids = _spool_events(stack, 3)
        stack.stack.pubsub.stop()
        try:
            failed = _drain_pass(stack, HOOKPIPE_PUBLISH_TIMEOUT_SECONDS="1")
        finally:
            stack.stack.restart_pubsub()
        assert failed.returncode == 1, failed.stderr + failed.stdout
        assert '"failed": 3' in failed.stdout + failed.stderr
        assert len(list(_spool(stack).list())) == 3
        drained = _drain_pass(stack)
        assert drained.returncode == 0, drained.stderr + drained.stdout
        stack.wait_committed(ids)
        assert list(_spool(stack).list()) == []


def test_the_spool_lists_from_where_a_pass_starts_and_wraps_around(stack: StackHandle) -> None:
    """Overlapping drainer executions start at random names, so they work on different objects;
    the listing pages lazily from there to the end, then from the start up to it."""
    from hookpipe.spool import object_name

    with _env(stack), _no_background_drainer(stack):
        names = sorted(object_name(i) for i in _spool_events(stack, 12))
        spool = _spool(stack)
        try:
            listed = [o.name for o in spool.list()]
            assert listed == names
            assert [o.name for o in spool.list(start_at=names[5])] == names[5:] + names[:5]
            assert [o.name for o in spool.list(3, start_at=names[10])] == [*names[10:], names[0]]
        finally:
            drain(spool, _publisher(stack), parallelism=4)
        assert list(spool.list()) == []
