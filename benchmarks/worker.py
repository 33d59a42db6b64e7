"""`make bench-worker`: events/s committed to both sinks and push-ack latency with 80 concurrent
push requests sent straight to the worker (the emulator's own push has at most 2 in flight),
with group commit on and off, in the same run; then end-to-end latency from ingest's 202 to the
row in Postgres at a steady rate through the real emulator. Prints Markdown for
docs/benchmarks.md."""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
from hookpipe.event import WebhookEvent, event_id, to_message
from hookpipe_devstack import REPO
from hookpipe_devstack.services import PythonService
from hookpipe_devstack.stack import Stack

from benchmarks.loadgen import LoadResult, build_request, cores, lead_body, rss_mb, run_load
from benchmarks.stages import RATE, Profile, Recorder


def push_envelope(i: int, run: str) -> bytes:
    event = WebhookEvent(
        event_id("leadprosper", f"{run}-{i}"),
        "leadprosper",
        "com.leadprosper.campaign_trigger",
        datetime.now(UTC),
        "application/json",
        lead_body(i),
    )
    data, attributes = to_message(event)
    return json.dumps(
        {
            "message": {
                "data": base64.b64encode(data).decode(),
                "attributes": attributes,
                "messageId": str(i),
            },
            "subscription": "projects/hookpipe-bench/subscriptions/hookpipe-worker-push",
        }
    ).encode()


def measure(service: PythonService, total: int, concurrency: int) -> tuple[LoadResult, float]:
    run = uuid.uuid4().hex[:8]
    bodies = [push_envelope(i, run) for i in range(total)]
    headers = {"Content-Type": "application/json"}
    rss_samples: list[float] = []
    stop = threading.Event()
    assert service.process is not None
    assert service.process.pid is not None
    pid = service.process.pid

    def sample() -> None:
        while not stop.wait(0.2):
            rss_samples.append(rss_mb([pid]))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    result = asyncio.run(
        run_load(
            "127.0.0.1",
            service.port,
            lambda i: build_request("127.0.0.1", service.port, "/pubsub/push", bodies[i], headers),
            total,
            concurrency,
        )
    )
    stop.set()
    sampler.join()
    return result, max(rss_samples, default=rss_mb([pid]))


def end_to_end(stack: Stack, rate: float, seconds: float) -> list[float]:
    """Webhooks through ingest at ``rate``/s; latency from the 202 to the row in Postgres."""
    accepted: dict[str, float] = {}
    seen: dict[str, float] = {}
    done = threading.Event()

    def poll() -> None:
        with psycopg.connect(stack.postgres.url, autocommit=True) as conn:
            while not (done.is_set() and len(seen) == len(accepted)):
                pending = [i for i in accepted if i not in seen]
                if pending:
                    rows = conn.execute(
                        "SELECT event_id FROM hookpipe.events WHERE event_id = ANY(%s)", (pending,)
                    ).fetchall()
                    now = time.perf_counter()
                    for (found,) in rows:
                        seen[found] = now
                time.sleep(0.005)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    headers = {"Authorization": f"Bearer {stack.token}", "Content-Type": "application/json"}
    with httpx.Client(timeout=10) as client:
        start = time.perf_counter()
        for n in range(int(rate * seconds)):
            time.sleep(max(0.0, start + n / rate - time.perf_counter()))
            response = client.post(
                f"{stack.ingest.url}/webhooks/leadprosper",
                content=lead_body(90_000_000 + n),
                headers=headers,
            )
            assert response.status_code == 202, response.text
            accepted[response.json()["event_id"]] = time.perf_counter()
    done.set()
    poller.join(120)
    return sorted((seen[i] - accepted[i]) * 1000 for i in accepted if i in seen)


def alternate(
    stack: Stack,
    variants: list[tuple[str, dict[str, str], int, Path]],
    rounds: int,
    concurrency: int,
) -> dict[str, tuple[LoadResult, float]]:
    """Each variant (name, environment, requests, checkout) as a fresh worker, alternating over
    ``rounds``; results pooled per variant with the peak RSS. The emulators slow down as tables
    grow and the machine is shared, so order must not pick a winner."""
    results: dict[str, tuple[LoadResult, float]] = {}
    for _ in range(rounds):
        for name, env, total, source in variants:
            service = PythonService(
                "worker", stack.state_dir, {**stack.service_env(), **env}, source=source
            )
            service.start()
            try:
                measure(service, 300, concurrency)  # warm-up: pool, clients, caches
                result, rss = measure(service, total, concurrency)
            finally:
                service.stop()
            if name in results:
                pooled, peak = results[name]
                pooled.latencies += result.latencies
                pooled.statuses.update(result.statuses)
                pooled.seconds += result.seconds
                results[name] = (pooled, max(peak, rss))
            else:
                results[name] = (result, rss)
    for name, (result, _) in results.items():
        assert result.statuses.keys() <= {204}, (name, result.statuses)
    return results


LOW_CONCURRENCY = 2  # the emulator's push, and a quiet production subscription
LOW_REQUESTS = 300


def compare(
    baseline: Path, requests: int, rounds: int, concurrency: int, profile: bool = False
) -> int:
    """This tree's worker against ``baseline``'s, default settings, same stack and run, in
    alternating rounds: throughput and ack latency at ``concurrency``, commit latency at
    ``LOW_CONCURRENCY`` in flight, and (``profile``) CPU per event by stage (benchmarks/stages)."""
    revision = subprocess.run(
        ["git", "-C", str(baseline), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    stack = Stack(
        Path(tempfile.mkdtemp(prefix="hookpipe-bench-worker-")), project_id="hookpipe-bench"
    )
    stack.extra_env = {"HOOKPIPE_LOG_LEVEL": "WARNING"}
    variants = [
        # A checkout's worker reads its own sources file (a newer one may hold tables it lacks).
        (f"baseline ({revision})", {"HOOKPIPE_SOURCES_FILE": str(baseline / "infra/sources.toml")},
         baseline),
        ("this tree", {}, REPO),
    ]  # fmt: skip
    rates: dict[str, list[float]] = {name: [] for name, _, _ in variants}
    p99s: dict[str, list[float]] = {name: [] for name, _, _ in variants}
    low_p50s: dict[str, list[float]] = {name: [] for name, _, _ in variants}
    peaks: dict[str, float] = {name: 0.0 for name, _, _ in variants}
    profiles = {name: Profile() for name, _, _ in variants}
    try:
        stack.start()
        for round_ in range(rounds):
            for name, env, source in variants:
                service = PythonService(
                    "worker", stack.state_dir, {**stack.service_env(), **env}, source=source
                )
                service.start()
                try:
                    measure(service, 300, concurrency)  # warm-up: pool, clients, caches
                    pid = service.serving_pid()
                    recorder = (
                        Recorder(pid, stack.state_dir / f"profile-{round_}-{len(rates[name])}.txt")
                        if profile and pid
                        else None
                    )
                    result, rss = measure(service, requests, concurrency)
                    if recorder is not None:
                        profiles[name].add(recorder.stop(requests))
                    low, _ = measure(service, LOW_REQUESTS, LOW_CONCURRENCY)
                finally:
                    service.stop()
                for one in (result, low):
                    assert one.statuses.keys() <= {204}, (name, one.statuses)
                rates[name].append(result.rate)
                p99s[name].append(result.percentile(0.99))
                low_p50s[name].append(low.p50)
                peaks[name] = max(peaks[name], rss)
                print(f"  round {round_ + 1} {name}: {result.rate:,.0f} events/s, p99 "
                      f"{result.percentile(0.99):.0f} ms, p50 at {LOW_CONCURRENCY} in flight "
                      f"{low.p50:.1f} ms", flush=True)  # fmt: skip
    finally:
        stack.stop()
    names = [name for name, _, _ in variants]
    base = names[0]

    def med(values: list[float]) -> float:
        return statistics.median(values)

    rows = [
        f"| {name} | {med(rates[name]):,.0f} | {med(rates[name]) / med(rates[base]):.2f}× | "
        f"{med(p99s[name]):.0f} | {med(p99s[name]) / med(p99s[base]):.2f}× | "
        f"{med(low_p50s[name]):.1f} | {med(low_p50s[name]) / med(low_p50s[base]):.2f}× | "
        f"{peaks[name]:.0f} |"
        for name in names
    ]
    print(f"""
`make bench-worker BASELINE=…` — {time.strftime("%Y-%m-%d")}, {cores()} cores, medians of {rounds} \
alternating rounds, {requests} pushes at {concurrency} concurrent straight to the worker, then \
{LOW_REQUESTS} at {LOW_CONCURRENCY} in flight; default settings.

| worker code | events/s | vs baseline | p99 ack ms | vs baseline | p50 ack ms at {LOW_CONCURRENCY} in flight | vs baseline | peak RSS MB |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
{chr(10).join(rows)}
""")
    if profile:
        stages = sorted({s for p in profiles.values() for s in p.samples},
                        key=lambda s: -profiles[names[-1]].samples[s])  # fmt: skip
        print(f"CPU ms per event by stage (py-spy, {RATE} samples/s, active threads):\n")
        print("| stage | " + " | ".join(names) + " |")
        print("| --- |" + " ---: |" * len(names))
        for stage in stages:
            cells = " | ".join(f"{profiles[n].cpu_ms_per_event(stage):.3f}" for n in names)
            print(f"| {stage} | {cells} |")
        totals = " | ".join(f"**{profiles[n].total_ms_per_event:.3f}**" for n in names)
        print(f"| all | {totals} |")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--unbatched-requests", type=int, default=1500)
    parser.add_argument("--concurrency", type=int, default=80)
    parser.add_argument("--e2e-rate", type=float, default=20.0)
    parser.add_argument("--e2e-seconds", type=float, default=15.0)
    parser.add_argument(
        "--baseline",
        type=Path,
        help="a checkout of another revision (git worktree add): compare its worker with this "
        "tree's, both with the default settings, alternating in the same run",
    )
    parser.add_argument(
        "--profile", action="store_true", help="with --baseline: CPU per event by stage (py-spy)"
    )
    args = parser.parse_args()
    if args.baseline is not None:
        return compare(
            args.baseline.resolve(), args.requests, args.rounds, args.concurrency, args.profile
        )

    stack = Stack(
        Path(tempfile.mkdtemp(prefix="hookpipe-bench-worker-")), project_id="hookpipe-bench"
    )
    stack.extra_env = {"HOOKPIPE_LOG_LEVEL": "WARNING"}
    rows = []
    try:
        stack.start()
        os.environ["PUBSUB_EMULATOR_HOST"] = stack.pubsub.host
        variants = [
            ("group commit (defaults: ≤500 rows, 20 ms, 4 in flight)", {}, args.requests),
            ("group commit, no added wait", {"HOOKPIPE_BATCH_MAX_DELAY_MS": "0"}, args.requests),
            ("group commit, 2 in flight", {"HOOKPIPE_BATCH_MAX_CONCURRENT": "2"}, args.requests),
            (
                "one write per message (batching off)",
                {"HOOKPIPE_BATCH_MAX_ROWS": "1", "HOOKPIPE_BATCH_MAX_DELAY_MS": "0"},
                args.unbatched_requests,
            ),
        ]
        results = alternate(stack, [(*v, REPO) for v in variants], args.rounds, args.concurrency)
        latencies = end_to_end(stack, args.e2e_rate, args.e2e_seconds)
    finally:
        stack.stop()

    base = results[variants[-1][0]][0].rate
    for name, (result, rss) in results.items():
        rows.append(
            f"| {name} | {result.rate:,.0f} | {result.rate / base:.1f}× | "
            f"{result.p50:.0f} | {result.percentile(0.99):.0f} | {rss:.0f} |"
        )
    p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]  # noqa: E731
    print(f"""
`make bench-worker` — {time.strftime("%Y-%m-%d")}, {cores()} cores, {args.rounds} alternating rounds pooled,
{args.concurrency} concurrent push
requests straight to the worker, ~1.5 KB LeadProsper events, real PostgreSQL and BigQuery emulator
on the same machine.

| worker | events/s committed to both sinks | vs one write per message | p50 ack ms | p99 ack ms | peak RSS MB |
| --- | ---: | ---: | ---: | ---: | ---: |
{chr(10).join(rows)}

End to end through ingest and the Pub/Sub emulator's own push, {args.e2e_rate:g} webhooks/s for
{args.e2e_seconds:g} s: 202 → row visible in Postgres p50 **{p(0.5):.0f} ms**, p99 **{p(0.99):.0f} ms**
({len(latencies)} of {int(args.e2e_rate * args.e2e_seconds)} seen).
""")
    return 0


if __name__ == "__main__":
    sys.exit(main())
