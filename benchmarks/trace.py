"""`make bench-trace`: how long `hookpipe trace` takes to answer, on the local stack.

The events table holds 100,000 other events (seeded directly) and the services' log files the
lines of 1,000 other webhooks (sent through ingest); one lead has a dozen status events, sent
through ingest. Each command is the CLI in a process of its own, as an operator runs it, in
alternating rounds; the baseline, in the same rounds, is the CLI answering `--help` (the
interpreter and the imports, which every command pays). Target (issue 20): under 2 s for the
lead with a dozen events.

Prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
from hookpipe_devstack.stack import Stack

REPO = Path(__file__).resolve().parents[1]
HOOKPIPE = REPO / ".venv/bin/hookpipe"
SEEDED = 100_000
NOISE = 1_000
STATUSES = [f"S{n:02d}" for n in range(12)]
ROUNDS = 7


def post(http: httpx.Client, stack: Stack, body: dict[str, str]) -> str:
    response = http.post(
        f"{stack.ingest.url}/webhooks/leadprosper",
        json=body,
        headers={"Authorization": f"Bearer {stack.token}"},
    )
    response.raise_for_status()
    return str(response.json()["event_id"])


def seed(url: str) -> None:
    now = datetime.now(UTC)
    with psycopg.connect(url, autocommit=True) as conn, conn.cursor() as cursor:
        with cursor.copy(
            "COPY hookpipe.events (event_id, source, event_type, received_at, payload) FROM STDIN"
        ) as copy:
            for n in range(SEEDED):
                payload = json.dumps({"lp_request_uuid": f"seed-{n}", "lp_status": "ACCEPTED"})
                copy.write_row((f"seed-{n}", "leadprosper", "t", now, payload))
        cursor.execute("ANALYZE hookpipe.events")


def timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, env=env, capture_output=True, check=False, timeout=120, cwd=REPO)
    return time.perf_counter() - started


def main() -> int:
    stack = Stack(
        Path(tempfile.mkdtemp(prefix="hookpipe-bench-trace-")), project_id="hookpipe-bench"
    )
    try:
        stack.start()
        seed(stack.postgres.url)
        lead = str(uuid.uuid4())
        with httpx.Client(timeout=30) as http, ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda n: post(http, stack, {"lp_request_uuid": str(uuid.uuid4()),
                                                       "lp_status": "ACCEPTED"}), range(NOISE)))  # fmt: skip
            ids = [post(http, stack, {"lp_request_uuid": lead, "lp_status": s}) for s in STATUSES]
        env = {
            **os.environ,
            **stack.dev_env(),
            "HOOKPIPE_LOGS_DIR": str(stack.state_dir / "logs"),
        }
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            done = subprocess.run(
                [str(HOOKPIPE), "trace", lead], env=env, capture_output=True, check=False, cwd=REPO
            )
            if done.returncode == 0:
                break
            time.sleep(0.5)
        else:
            raise SystemExit("the lead's events did not land")
        log_bytes = sum(p.stat().st_size for p in (stack.state_dir / "logs").glob("*.log"))
        commands = {
            "`hookpipe --help` (baseline: start-up)": [str(HOOKPIPE), "--help"],
            "`hookpipe trace <lp_request_uuid>` (12 events)": [str(HOOKPIPE), "trace", lead],
            "`hookpipe trace <event id>`": [str(HOOKPIPE), "trace", ids[0]],
            "`hookpipe trace --recent --limit 20`": [str(HOOKPIPE), "trace", "--recent"],
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(ROUNDS):
            for name, argv in commands.items():
                times[name].append(timed(argv, env))
    finally:
        stack.stop()
    print(f"\n{SEEDED:,} seeded events, {NOISE:,} webhooks of noise through ingest, "
          f"{log_bytes / 1e6:.1f} MB of log files; {ROUNDS} alternating rounds\n")  # fmt: skip
    print("| command | median | max | median less the baseline |")
    print("| --- | ---: | ---: | ---: |")
    baseline = statistics.median(next(iter(times.values())))
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.2f} s | {max(values):.2f} s | {median - baseline:.2f} s |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
