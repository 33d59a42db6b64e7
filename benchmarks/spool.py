"""`make bench-spool`: what the spool costs and what it does, in one run on one machine.

1. Healthy Pub/Sub: ingest without a spool configured against ingest with one, alternating rounds
   (the spool must cost nothing on the happy path).
2. Pub/Sub paused (SIGSTOP): every webhook is spooled; ingest's accepted/s and latency.
3. Draining: the time `hookpipe-spool drain` takes to republish and delete what step 2 spooled
   (10,000 events by default).

Prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from google.cloud.pubsub_v1 import PublisherClient, SubscriberClient
from hookpipe_devstack.emulators import PubSubEmulator, StorageEmulator
from hookpipe_devstack.processes import ManagedProcess
from hookpipe_devstack.services import PythonService
from hookpipe_ingest.drain import drain
from hookpipe_ingest.spool import GcsSpool

from benchmarks.ingest import PROJECT, TOKEN, load, status
from benchmarks.loadgen import LoadResult, cores


def _row(name: str, r: LoadResult) -> str:
    return (
        f"| {name} | {r.rate:,.0f} | {r.p50:.1f} | {r.percentile(0.99):.1f} | {dict(r.statuses)} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=5000, help="per healthy round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--spooled", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()

    state = Path(tempfile.mkdtemp(prefix="hookpipe-bench-spool-"))
    pubsub, storage = PubSubEmulator(state), StorageEmulator(state)
    pubsub.start()
    storage.start()
    os.environ["PUBSUB_EMULATOR_HOST"] = pubsub.host
    os.environ["STORAGE_EMULATOR_HOST"] = storage.url
    publisher, subscriber = PublisherClient(), SubscriberClient()
    topic = publisher.create_topic(name=publisher.topic_path(PROJECT, "hookpipe-events")).name
    subscriber.create_subscription(
        name=subscriber.subscription_path(PROJECT, "bench-sink"), topic=topic
    )
    env = {
        "HOOKPIPE_PROJECT_ID": PROJECT,
        "PUBSUB_EMULATOR_HOST": pubsub.host,
        "HOOKPIPE_SOURCES_FILE": str(Path(__file__).resolve().parents[1] / "infra/sources.toml"),
        "HOOKPIPE_LEADPROSPER_TOKENS": TOKEN,
        "HOOKPIPE_LOG_LEVEL": "INFO",
    }
    spool_env = {
        **env,
        "STORAGE_EMULATOR_HOST": storage.url,
        "HOOKPIPE_SPOOL_BUCKET": storage.bucket,
    }
    started: list[ManagedProcess] = []
    offset = 0

    def start(name: str, service_env: dict[str, str]) -> PythonService:
        service = PythonService("ingest", state / name, service_env)
        service.start()
        assert service.process is not None
        started.append(service.process)
        service.process.wait_ready(lambda: status("GET", f"{service.url}/readyz") == 200, 60)
        return service

    try:
        plain, spooling = start("plain", env), start("spooling", spool_env)
        for service in (plain, spooling):  # warm-up
            load(service.port, "/webhooks/leadprosper", 1000, args.concurrency, 90_000_000)
        healthy: dict[str, list[LoadResult]] = {"without": [], "with": []}
        for _ in range(args.rounds):
            for name, service in (("without", plain), ("with", spooling)):
                result = load(
                    service.port, "/webhooks/leadprosper", args.requests, args.concurrency, offset
                )
                offset += args.requests
                healthy[name].append(result)
        plain.stop()

        assert pubsub.process is not None
        pubsub.process.signal(signal.SIGSTOP)
        try:
            paused = load(
                spooling.port, "/webhooks/leadprosper", args.spooled, args.concurrency, offset
            )
        finally:
            pubsub.process.signal(signal.SIGCONT)
        spool = GcsSpool(storage.bucket, project_id=PROJECT, timeout_seconds=30, emulator_host="x")
        waiting = sum(1 for _ in spool.list())

        def publish(data: bytes, attributes: Mapping[str, str]) -> None:
            publisher.publish(topic, data, **attributes).result(timeout=30)

        drain_started = time.perf_counter()
        report = drain(spool, publish, parallelism=16)
        drain_seconds = time.perf_counter() - drain_started
        left = sum(1 for _ in spool.list())
    finally:
        for process in started:
            process.stop()
        subscriber.close()
        publisher.stop()
        storage.stop()
        pubsub.stop()

    best = {name: max(results, key=lambda r: r.rate) for name, results in healthy.items()}
    ratio = best["with"].rate / best["without"].rate
    print(f"""
`make bench-spool` — {time.strftime("%Y-%m-%d")}, {cores()} cores, {args.concurrency} concurrent \
senders, Pub/Sub emulator and fake-gcs-server on the same machine.

| | accepted/s | p50 ms | p99 ms | answers |
| --- | ---: | ---: | ---: | --- |
{_row("healthy Pub/Sub, ingest without a spool (best of " + str(args.rounds) + ")", best["without"])}
{_row("healthy Pub/Sub, ingest with a spool (best of " + str(args.rounds) + ")", best["with"])}
{_row(f"Pub/Sub paused: every webhook spooled ({args.spooled:,})", paused)}

- with a spool / without, Pub/Sub healthy: **{ratio:.2f}×** (rounds: \
{", ".join(f"{r.rate:,.0f}" for r in healthy["without"])} without; \
{", ".join(f"{r.rate:,.0f}" for r in healthy["with"])} with)
- spooled while paused: {waiting:,} objects; drained (republished and deleted) in \
**{drain_seconds:.1f} s** ({report.published / drain_seconds:,.0f}/s), {report.failed} failed, \
{left} left
""")
    return 0


if __name__ == "__main__":
    sys.exit(main())
