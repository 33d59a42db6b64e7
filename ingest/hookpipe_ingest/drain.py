"""Drain the spool: republish each spooled message, then delete it. ``hookpipe-spool drain``.

Runs as a Cloud Run job on a Cloud Scheduler tick (every minute; infra/terraform/spool.tf) with its
own service account, and locally as ``hookpipe-spool drain --every 2`` (``make run``, the tests).

A pass takes the listing as it pages in, at most ``HOOKPIPE_DRAIN_PARALLELISM`` objects in flight
(memory is bounded by that, not by the backlog), starts nothing after
``HOOKPIPE_DRAIN_DEADLINE_SECONDS``, and begins at a random name (wrapping around), so passes that
overlap take different objects first.

Per object: read it (at its generation), publish its data and attributes unchanged, wait for
Pub/Sub's confirmation, and only then delete it (at its generation). So:

* killed between publish and delete: the object stays and the next run publishes it again: a
  duplicate publish of the same event id, which the sinks absorb (Postgres ``ON CONFLICT``,
  BigQuery row ids and the ``events`` view);
* two drainers racing: both may publish an object (absorbed the same way); one deletes it and the
  other finds it gone (not an error);
* Pub/Sub still down: nothing is deleted and the run exits non-zero; the next tick tries again.

``hookpipe-spool stats`` prints how many objects wait and the oldest one's age (what the spool
alert watches) as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import queue
import secrets
import sys
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, as_completed, wait
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from google.cloud.pubsub_v1 import PublisherClient
from hookpipe.errors import ConfigError, error_class
from hookpipe.logging import configure_logging, log_event
from hookpipe.settings import CommonSettings, exit_on_config_error, load_settings
from hookpipe.spool import PREFIX
from pydantic import Field

from hookpipe_ingest.errors import BadSpoolObject, SpoolUnavailable
from hookpipe_ingest.spool import GcsSpool, SpooledObject, decode

logger = logging.getLogger("hookpipe.spool")

type Publish = Callable[[bytes, Mapping[str, str]], None]


class DrainSettings(CommonSettings):
    spool_bucket: str = Field(min_length=1, description="the spool's Cloud Storage bucket")
    spool_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    publish_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    drain_parallelism: int = Field(default=16, ge=1, le=128)
    # A pass starts no object after this long: well inside the job's timeout, and under the
    # scheduler's tick, so the next execution does not overlap it (infra/terraform/spool.tf).
    drain_deadline_seconds: float = Field(default=45.0, gt=0, le=3000)


@dataclass
class DrainReport:
    published: int = 0
    gone: int = 0  # taken by another drainer between listing and reading
    failed: int = 0  # not published (Pub/Sub or the spool failed): left for the next run
    # Why, by exception class. A plain dict: dataclasses.asdict rebuilds a Counter from its
    # (key, count) pairs, counting the pairs, which made the failure's log line unwritable.
    errors: dict[str, int] = field(default_factory=dict)
    bad: list[str] = field(default_factory=list)  # not spooled messages: left in place
    stopped_at_deadline: bool = False  # objects were left for the next pass to stay in time
    seconds: float = 0.0


def drain_one(spool: GcsSpool, publish: Publish, item: SpooledObject) -> str:
    content = spool.read(item)
    if content is None:
        return "gone"
    data, attributes = decode(content)
    publish(data, attributes)  # raises unless Pub/Sub confirmed
    spool.delete(item)
    return "published"


def drain(
    spool: GcsSpool,
    publish: Publish,
    *,
    parallelism: int,
    limit: int | None = None,
    deadline: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    start_at: str = "",
) -> DrainReport:
    """One pass over what is spooled now, as the listing pages in: at most ``parallelism``
    objects in flight, so memory is bounded by ``parallelism`` times an object's size however
    large the backlog, and no object is started once ``clock()`` reaches ``deadline`` (what is
    left waits for the next pass). ``start_at``: the name the pass starts from (it wraps)."""
    started = clock()
    report = DrainReport()

    def one(item: SpooledObject) -> tuple[str, str | None]:
        """The object's outcome, and why when it failed; counted by the caller's thread."""
        try:
            return drain_one(spool, publish, item), None
        except BadSpoolObject:
            return "bad", None
        except Exception as exc:  # one object's failure never stops the pass: counted, logged
            return "failed", error_class(exc)

    def count(done: Iterable[Future[tuple[str, str | None]]]) -> None:
        for future in done:
            outcome, error = future.result()
            if outcome == "bad":
                report.bad.append(in_flight.pop(future).name)
            else:
                in_flight.pop(future)
                setattr(report, outcome, getattr(report, outcome) + 1)
            if error is not None:
                report.errors[error] = report.errors.get(error, 0) + 1

    in_flight: dict[Future[tuple[str, str | None]], SpooledObject] = {}
    listing = prefetched(spool.list(limit, start_at=start_at), LIST_AHEAD)
    with ThreadPoolExecutor(parallelism) as pool, contextlib.closing(listing):
        for item in listing:
            if len(in_flight) >= parallelism:
                count(wait(in_flight, return_when=FIRST_COMPLETED).done)
            if deadline is not None and clock() >= deadline:
                report.stopped_at_deadline = True
                break
            in_flight[pool.submit(one, item)] = item
        count(list(as_completed(in_flight)))
    report.seconds = round(clock() - started, 3)
    return report


# Names listed ahead of the drain (a page of the listing is 1,000): the next page is fetched
# while the last one drains, and memory stays a few pages, whatever the backlog.
LIST_AHEAD = 2000


def prefetched[T](items: Iterator[T], ahead: int) -> Generator[T]:
    """``items``, read by a thread of its own up to ``ahead`` in advance; what it raises is
    raised here. Closing the generator stops the thread."""
    buffer: queue.Queue[T | _End] = queue.Queue(maxsize=ahead)
    stop = threading.Event()

    def put(item: T | _End) -> bool:
        while not stop.is_set():
            try:
                buffer.put(item, timeout=0.1)
            except queue.Full:
                continue
            return True
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
        except BaseException as exc:  # handed to the consumer, which raises it
            put(_End(exc))
        else:
            put(_End(None))

    threading.Thread(target=produce, name="spool-list", daemon=True).start()
    try:
        while not isinstance(item := buffer.get(), _End):
            yield item
        if item.error is not None:
            raise item.error
    finally:
        stop.set()


@dataclass(frozen=True, slots=True)
class _End:
    error: BaseException | None


def stats(spool: GcsSpool, now: datetime) -> dict[str, float | int | None]:
    """How many objects wait and the oldest one's age, in one pass over the listing."""
    objects, oldest = 0, None
    for item in spool.list():
        objects += 1
        oldest = item.created if oldest is None else min(oldest, item.created)
    return {
        "objects": objects,
        "oldest_age_seconds": round((now - oldest).total_seconds(), 3) if oldest else None,
    }


def random_start() -> str:
    """Where a pass starts listing: passes that overlap (an execution started while the last
    one finishes) work on different objects rather than the same ones in the same order."""
    return PREFIX + secrets.token_hex(4)


def pubsub_publish(settings: DrainSettings) -> Publish:
    client = PublisherClient()
    topic = client.topic_path(settings.project_id, settings.events_topic)

    def publish(data: bytes, attributes: Mapping[str, str]) -> None:
        client.publish(topic, data, **attributes).result(timeout=settings.publish_timeout_seconds)

    return publish


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hookpipe-spool", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("drain", help="republish spooled events, then delete them")
    run.add_argument("--every", type=float, help="keep draining, a pass every N seconds")
    run.add_argument("--limit", type=int, help="at most N objects per pass")
    commands.add_parser("stats", help="objects waiting and the oldest one's age, as JSON")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(DrainSettings)
    except ConfigError as exc:
        raise exit_on_config_error("spool drainer", exc) from None
    configure_logging(settings.project_id, settings.log_level)
    spool = GcsSpool(
        settings.spool_bucket,
        project_id=settings.project_id,
        timeout_seconds=settings.spool_timeout_seconds,
        emulator_host=os.environ.get("STORAGE_EMULATOR_HOST"),
    )
    if args.command == "stats":
        print(json.dumps(stats(spool, datetime.now(UTC))))
        return 0
    publish = pubsub_publish(settings)
    while True:
        try:
            report = drain(
                spool,
                publish,
                parallelism=settings.drain_parallelism,
                limit=args.limit,
                deadline=time.monotonic() + settings.drain_deadline_seconds,
                start_at=random_start(),
            )
            left = stats(spool, datetime.now(UTC))
        except SpoolUnavailable as exc:
            log_event(
                logger,
                logging.ERROR,
                f"spool drain failed: {exc}",
                project_id=settings.project_id,
                fields={"event": "spool_drain_failed"},
            )
            if args.every is None:
                return 1
        else:
            if report.published or report.failed or report.bad or left["objects"]:
                log_event(
                    logger,
                    logging.ERROR if report.failed or report.bad else logging.INFO,
                    f"spool drain: {report.published} published, {left['objects']} left",
                    project_id=settings.project_id,
                    fields={"event": "spool_drain", **asdict(report), **left},
                )
            if args.every is None:
                return 1 if report.failed else 0
        time.sleep(args.every)


if __name__ == "__main__":
    sys.exit(main())
