"""`make bench-drain`: the spool drainer against a backlog, in one run on one machine.

fake-gcs-server is filled with N spooled LeadProsper events (objects exactly as ingest writes
them), and one `hookpipe-spool drain` pass, as the Cloud Run job runs it, republishes and deletes
them all (its deadline lifted so that one pass takes the whole backlog). For each backlog size:
wall time, objects/s, and the pass's peak RSS (the job's limit is 512 MiB). Peak RSS must not grow
with the backlog: the sizes are compared in the same run. ``--baseline DIR`` also runs another
checkout's drainer (its ``ingest/`` and ``shared/`` first on PYTHONPATH) on the same backlogs.

Prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
from google.cloud.pubsub_v1 import PublisherClient
from hookpipe.event import WebhookEvent, event_id, to_message
from hookpipe.spool import object_name
from hookpipe_devstack.emulators import PubSubEmulator, StorageEmulator
from hookpipe_ingest.spool import encode

from benchmarks.loadgen import cores

PROJECT = "hookpipe-bench"
# A LeadProsper Campaign Trigger body of the usual size (~1.5 KB spooled).
LEAD = {
    "lp_status": "ACCEPTED", "lp_campaign_id": "2024", "lp_supplier_id": "77",
    "lp_lead_date_utc": "2026-11-26 09:00:00", "first_name": "Ada", "last_name": "Lovelace",
    "email": "ada@example.com", "phone": "+15555550100", "address": "12 Analytical Engine Way",
    "city": "London", "zip": "10001", "notes": "x" * 600,
}  # fmt: skip
REPO = Path(__file__).resolve().parents[1]
JOB_MEMORY_MB = 512


def fill(storage_url: str, bucket: str, count: int, concurrency: int = 64) -> None:
    """``count`` spooled events, written as ingest writes them (create-only objects)."""
    now = datetime.now(UTC)

    async def upload_all() -> None:
        limits = httpx.Limits(max_connections=concurrency)
        async with httpx.AsyncClient(base_url=storage_url, limits=limits, timeout=60) as client:
            gate = asyncio.Semaphore(concurrency)

            async def upload(n: int) -> None:
                body = json.dumps({**LEAD, "lp_request_uuid": str(uuid.uuid4()), "n": n}).encode()
                event = WebhookEvent(
                    event_id("leadprosper", body.decode()), "leadprosper", "bench", now,
                    "application/json", body,
                )  # fmt: skip
                async with gate:
                    response = await client.post(
                        f"/upload/storage/v1/b/{bucket}/o",
                        params={
                            "uploadType": "media",
                            "name": object_name(event.id),
                            "ifGenerationMatch": "0",
                        },
                        content=encode(*to_message(event)),
                        headers={"Content-Type": "application/json"},
                    )
                    response.raise_for_status()

            await asyncio.gather(*(upload(n) for n in range(count)))

    asyncio.run(upload_all())


def drain_once(state: Path, count: int, code: Path | None) -> tuple[float, float, str]:
    """One drain pass over a fresh backlog of ``count``: (seconds, peak RSS MB, its log line)."""
    pubsub, storage = PubSubEmulator(state), StorageEmulator(state)
    pubsub.start()
    storage.start()
    try:
        filled = time.perf_counter()
        fill(storage.url, storage.bucket, count)
        print(f"  spooled {count:,} in {time.perf_counter() - filled:.0f} s", flush=True)
        os.environ["PUBSUB_EMULATOR_HOST"] = pubsub.host
        publisher = PublisherClient()
        # No subscription: published messages are dropped, so the emulator's memory stays flat.
        publisher.create_topic(name=publisher.topic_path(PROJECT, "hookpipe-events"))
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOOKPIPE_PROJECT_ID": PROJECT,
            "PUBSUB_EMULATOR_HOST": pubsub.host,
            "STORAGE_EMULATOR_HOST": storage.url,
            "HOOKPIPE_SPOOL_BUCKET": storage.bucket,
            "HOOKPIPE_DRAIN_DEADLINE_SECONDS": "3000",
        }
        if code is not None:
            env["PYTHONPATH"] = f"{code / 'ingest'}:{code / 'shared'}"
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", "hookpipe_ingest.drain", "drain"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        output = process.stdout.read() if process.stdout else ""
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            raise SystemExit(f"drain exited {process.returncode}:\n{output[-2000:]}")
        report = next((line for line in output.splitlines() if '"spool_drain"' in line), "")
        return seconds, usage.ru_maxrss / 1024, report
    finally:
        storage.stop()
        pubsub.stop()


# A drain pass in a process of its own over N objects of an in-memory spool (each read returns a
# spooled event of the usual size; publishing costs nothing): the drainer's own memory, whatever
# the storage behind it. fake-gcs-server cannot hold 100,000 objects in reasonable time (its
# creates slow down as it fills), so the backlog sizes the job must survive are measured so.
SYNTHETIC = """
import resource, sys, time
from datetime import UTC, datetime
from hookpipe_ingest.drain import drain
from hookpipe_ingest.spool import SpooledObject, encode
count = int(sys.argv[1])
content = encode(b"x" * 1400, {"ce-id": "e", "ce-source": "/sources/leadprosper"})
now = datetime.now(UTC)
class Spool:
    def list(self, limit=None, *, start_at=""):
        for n in range(count):
            yield SpooledObject(f"spool/{n:012d}", 1, now)
    def read(self, item):
        return bytes(content)
    def delete(self, item):
        pass
started = time.perf_counter()
report = drain(Spool(), lambda data, attributes: None, parallelism=16)
assert report.published == count, report
print(time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def synthetic(count: int, code: Path | None) -> tuple[float, float]:
    env = {**os.environ}
    if code is not None:
        env["PYTHONPATH"] = f"{code / 'ingest'}:{code / 'shared'}"
    result = subprocess.run(
        [sys.executable, "-c", SYNTHETIC, str(count)],
        env=env, capture_output=True, text=True, check=True, timeout=1800,
    )  # fmt: skip
    seconds, rss = result.stdout.split()
    return float(seconds), float(rss)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000])
    parser.add_argument("--baseline", type=Path, help="another checkout's drainer, same backlogs")
    parser.add_argument(
        "--baseline-sizes", type=int, nargs="+", help="the backlogs the baseline drains (--sizes)"
    )
    parser.add_argument(
        "--synthetic-sizes", type=int, nargs="+", default=[10_000, 100_000, 250_000],
        help="backlogs drained from an in-memory spool: the drainer's own peak RSS",
    )  # fmt: skip
    args = parser.parse_args()
    state = Path(tempfile.mkdtemp(prefix="hookpipe-bench-drain-"))
    trees: list[tuple[str, Path | None]] = [("this tree", None)]
    if args.baseline is not None:
        revision = subprocess.run(
            ["git", "-C", str(args.baseline), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        trees.append((f"baseline ({revision})", args.baseline.resolve()))
    rows = []
    try:
        for count in sorted(set(args.sizes) | set(args.baseline_sizes or [])):
            for name, code in trees:
                if code is not None and count not in (args.baseline_sizes or args.sizes):
                    continue
                if code is None and count not in args.sizes:
                    continue
                seconds, rss, _ = drain_once(state, count, code)
                rows.append((name, count, seconds, rss))
                print(f"{name}: {count:,} in {seconds:.1f} s, peak RSS {rss:.0f} MB", flush=True)
    finally:
        shutil.rmtree(state, ignore_errors=True)
    synthetic_rows = []
    for count in args.synthetic_sizes:
        for name, code in trees:
            seconds, rss = synthetic(count, code)
            synthetic_rows.append((name, count, seconds, rss))
            print(f"{name}: in-memory spool, {count:,} in {seconds:.1f} s, peak RSS {rss:.0f} MB")
    synthetic_table = "\n".join(
        f"| {name} | {count:,} | {seconds:.1f} | {rss:.0f} | {rss / JOB_MEMORY_MB:.0%} |"
        for name, count, seconds, rss in synthetic_rows
    )
    table = "\n".join(
        f"| {name} | {count:,} | {seconds:.1f} | {count / seconds:,.0f} | {rss:.0f} | "
        f"{rss / JOB_MEMORY_MB:.0%} |"
        for name, count, seconds, rss in rows
    )
    print(f"""
`make bench-drain` — {time.strftime("%Y-%m-%d")}, {cores()} cores, fake-gcs-server (in memory)
and the Pub/Sub emulator on the same machine, one `hookpipe-spool drain` pass, default
parallelism.

| drainer | spooled objects | seconds | objects/s | peak RSS MB | of the job's {JOB_MEMORY_MB} MiB |
| --- | ---: | ---: | ---: | ---: | ---: |
{table}

The drainer's own memory, one pass over an in-memory spool (no storage, no Pub/Sub):

| drainer | spooled objects | seconds | peak RSS MB | of the job's {JOB_MEMORY_MB} MiB |
| --- | ---: | ---: | ---: | ---: |
{synthetic_table}
""")
    return 0


if __name__ == "__main__":
    sys.exit(main())
