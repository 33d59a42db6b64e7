"""`make bench-ingest`: ingest's accepted webhooks/s and latency, beside in the same run
(a) the emulator's raw publish ceiling and (b) a textbook synchronous baseline.

64 concurrent senders post ~1.5 KB LeadProsper JSON bodies with a valid token; ingest publishes to
the real Pub/Sub emulator. Prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from concurrent.futures import wait
from pathlib import Path

import httpx
from google.cloud.pubsub_v1 import PublisherClient, SubscriberClient
from hookpipe.event import WebhookEvent, event_id, to_message
from hookpipe_devstack import REPO
from hookpipe_devstack.emulators import PubSubEmulator
from hookpipe_devstack.processes import ManagedProcess, free_port
from hookpipe_devstack.services import PythonService

from benchmarks.loadgen import build_request, cores, lead_body, pss_mb, rss_mb, run_load

PROJECT = "hookpipe-bench"
TOKEN = "bench-token-0123456789abcdefghij"


def publish_ceiling(topic: str, total: int) -> float:
    """(a) A plain batched publisher, no HTTP: the emulator's raw publish rate for these messages."""
    client = PublisherClient()
    now = __import__("datetime").datetime.now(__import__("datetime").UTC)
    messages = [
        to_message(
            WebhookEvent(
                event_id("bench", str(i)), "leadprosper", "t", now, "application/json", lead_body(i)
            )
        )
        for i in range(total)
    ]
    started = time.perf_counter()
    futures = [client.publish(topic, data, **attrs) for data, attrs in messages]
    wait(futures)
    seconds = time.perf_counter() - started
    assert all(f.exception() is None for f in futures)
    client.stop()
    return total / seconds


def status(method: str, url: str) -> int:
    try:
        return httpx.request(method, url, timeout=2).status_code
    except httpx.HTTPError:
        return 0


def start_function(
    state: Path, env: dict[str, str], target: str, source: str, *flags: str, ready_status: int
) -> tuple[ManagedProcess, int]:
    port = free_port()
    process = ManagedProcess(
        target,
        [
            str(Path(sys.executable).parent / "functions-framework"),
            f"--target={target}",
            f"--source={REPO / 'benchmarks' / source}",
            "--host=127.0.0.1",
            f"--port={port}",
            *flags,
        ],
        state / f"logs/{target}.log",
        env={**os.environ, **env},
    )
    process.start()
    process.wait_ready(lambda: status("POST", f"http://127.0.0.1:{port}/") == ready_status, 60)
    return process, port


def startup(state: Path, name: str, env: dict[str, str], ready_path: str) -> float:
    """Seconds from launching the service to ``ready_path`` answering 200."""
    service = PythonService(name, state, env)
    started = time.perf_counter()
    service.start()
    assert service.process is not None
    try:
        service.process.wait_ready(lambda: status("GET", service.url + ready_path) == 200, 60)
        return time.perf_counter() - started
    finally:
        service.stop()


def load(port: int, path: str, total: int, concurrency: int, offset: int):  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    return asyncio.run(
        run_load(
            "127.0.0.1",
            port,
            lambda i: build_request("127.0.0.1", port, path, lead_body(offset + i), headers),
            total,
            concurrency,
        )
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--baseline-requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()

    state = Path(tempfile.mkdtemp(prefix="hookpipe-bench-ingest-"))
    pubsub = PubSubEmulator(state)
    pubsub.start()
    os.environ["PUBSUB_EMULATOR_HOST"] = pubsub.host
    publisher, subscriber = PublisherClient(), SubscriberClient()
    topic = publisher.create_topic(name=publisher.topic_path(PROJECT, "hookpipe-events")).name
    # One subscription, as in production, so the emulator stores what it accepts.
    subscriber.create_subscription(
        name=subscriber.subscription_path(PROJECT, "bench-sink"), topic=topic
    )
    env = {
        "HOOKPIPE_PROJECT_ID": PROJECT,
        "PUBSUB_EMULATOR_HOST": pubsub.host,
        "HOOKPIPE_SOURCES_FILE": str(REPO / "infra/sources.toml"),
        "HOOKPIPE_LEADPROSPER_TOKENS": TOKEN,
        # As in production: one canonical INFO line per request (to the log file here).
        "HOOKPIPE_LOG_LEVEL": "INFO",
        "WORKERS": os.environ.get("WORKERS", "1"),
        "BENCH_TOPIC": topic,
        "BENCH_TOKEN": TOKEN,
    }
    started_processes: list[ManagedProcess] = []  # stopped whatever happens
    try:
        # Start-up first, while the emulator is fresh: later it holds every message the other
        # rows published and answers its first RPCs slower.
        ingest_startups = [
            startup(state / f"start-ingest-{i}", "ingest", env, "/readyz") for i in range(3)
        ]
        worker_env = {
            **env,
            "HOOKPIPE_DATABASE_URL": "postgresql://bench@127.0.0.1:1/none",
            "HOOKPIPE_PUSH_AUTH": "none",
        }
        worker_startups = [
            startup(state / f"start-worker-{i}", "worker", worker_env, "/healthz") for i in range(3)
        ]
        publish_ceiling(topic, 2000)  # warm-up
        ceiling = publish_ceiling(topic, args.requests)

        trivial, trivial_port = start_function(
            state, env, "trivial", "trivial_function.py", "--asgi", ready_status=202
        )
        started_processes.append(trivial)
        load(trivial_port, "/", 1000, args.concurrency, 40_000_000)  # warm-up
        http_ceiling = load(trivial_port, "/", args.requests, args.concurrency, 50_000_000)
        trivial.stop()

        bound, bound_port = start_function(
            state,
            {**env, "HOOKPIPE_LOG_LEVEL": "WARNING"},
            "handler_only",
            "ingest_handler_only.py",
            "--asgi",
            ready_status=404,
        )
        started_processes.append(bound)
        path = "/webhooks/leadprosper"
        load(bound_port, path, 1000, args.concurrency, 60_000_000)  # warm-up
        handler_only = load(bound_port, path, args.requests, args.concurrency, 70_000_000)
        bound.stop()

        naive, naive_port = start_function(state, env, "naive", "naive_ingest.py", ready_status=401)
        started_processes.append(naive)
        load(naive_port, "/", 500, args.concurrency, 10_000_000)  # warm-up
        baseline = load(naive_port, "/", args.baseline_requests, args.concurrency, 20_000_000)
        naive.stop()

        service = PythonService("ingest", state, env)
        started = time.perf_counter()
        service.start()
        assert service.process is not None
        started_processes.append(service.process)
        service.process.wait_ready(lambda: status("GET", f"{service.url}/readyz") == 200, 60)
        loaded_startup = time.perf_counter() - started
        load(service.port, "/webhooks/leadprosper", 1000, args.concurrency, 30_000_000)
        ours = load(service.port, "/webhooks/leadprosper", args.requests, args.concurrency, 0)
        pids = [service.process.pid] if service.process.pid else []
        rss, pss = rss_mb(pids), pss_mb(pids)
        service.stop()
    finally:
        for process in started_processes:
            process.stop()
        subscriber.close()
        publisher.stop()
        pubsub.stop()

    assert ours.statuses.keys() <= {202}, ours.statuses
    assert baseline.statuses.keys() <= {202}, baseline.statuses
    assert handler_only.statuses.keys() <= {202}, handler_only.statuses
    print(f"""
`make bench-ingest` — {time.strftime("%Y-%m-%d")}, {cores()} cores, {args.concurrency} concurrent senders,
~{len(lead_body(0))} B LeadProsper JSON bodies, Pub/Sub emulator on the same machine.

| | accepted/s | p50 ms | p99 ms |
| --- | ---: | ---: | ---: |
| (a) emulator raw publish ceiling (batched client, no HTTP) | {ceiling:,.0f} | | |
| HTTP ceiling: a do-nothing function on the same server and load generator | {http_ceiling.rate:,.0f} | {http_ceiling.p50:.1f} | {http_ceiling.percentile(0.99):.1f} |
| ingest's handler alone (no-op publisher, no log line): its upper bound here | {handler_only.rate:,.0f} | {handler_only.p50:.1f} | {handler_only.percentile(0.99):.1f} |
| (b) naive baseline (Flask, `publish().result()` per request) | {baseline.rate:,.0f} | {baseline.p50:.1f} | {baseline.percentile(0.99):.1f} |
| **ingest** (functions-framework ASGI, `{args.requests:,}` requests) | **{ours.rate:,.0f}** | **{ours.p50:.1f}** | **{ours.percentile(0.99):.1f}** |

- ingest / emulator ceiling: **{ours.rate / ceiling:.0%}** (context; #3's 70% target retired)
- handler alone / ceiling: **{handler_only.rate / ceiling:.0%}** (the most any publisher could reach)
- ingest / naive baseline: **{ours.rate / baseline.rate:.1f}×** (target ≥ 8×)
- ingest p99 at {args.concurrency} senders: **{ours.percentile(0.99):.1f} ms** (target < 30 ms)
- ingest / do-nothing function (HTTP ceiling): **{ours.rate / http_ceiling.rate:.2f}** \
(target ≥ 0.30)
- ingest memory after the run (gunicorn master + worker): RSS summed **{rss:.0f} MB** \
(target < 150 MB), PSS **{pss:.0f} MB** (shared pages counted once)
- ingest start-up to `/readyz` 200, fresh emulator (median of 3): \
**{sorted(ingest_startups)[1]:.2f} s** ({", ".join(f"{t:.2f}" for t in ingest_startups)}; \
target < 1.0 s); after the load rows, emulator busy: {loaded_startup:.2f} s
- worker start-up to `/healthz` 200 (median of 3; its `/readyz` needs Postgres): \
**{sorted(worker_startups)[1]:.2f} s** ({", ".join(f"{t:.2f}" for t in worker_startups)})
""")
    return 0


if __name__ == "__main__":
    sys.exit(main())
