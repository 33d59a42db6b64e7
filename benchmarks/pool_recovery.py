"""`make bench-recovery`: how long after Postgres is back the worker's connection pool serves a
connection again, with psycopg_pool's default ``reconnect_timeout`` (300 s, inside which its retry
delay doubles without a cap: 1, 2, 4 … 64 s) against the worker's (``RECONNECT_TIMEOUT_SECONDS``),
in the same run, against a real PostgreSQL stopped for 10, 30 and 60 s.

Traffic keeps asking for a connection every 0.2 s during the outage, as pushes would. The lag is
measured from the moment Postgres accepts connections again to the pool's first served one.
Prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from hookpipe_devstack.postgres import Postgres
from hookpipe_worker.sinks.postgres import RECONNECT_TIMEOUT_SECONDS, create_pool
from psycopg_pool import PoolTimeout

DEFAULT_RECONNECT_TIMEOUT = 300.0  # psycopg_pool's own default


async def recovery_lag(postgres: Postgres, outage: float, reconnect_timeout: float) -> float:
    # The worker's own pool, differing only in reconnect_timeout.
    pool = create_pool(
        postgres.url, min_size=1, max_size=2, timeout=1.0, reconnect_timeout=reconnect_timeout
    )
    await pool.open(wait=True)
    served_at: list[float] = []
    back_at = float("inf")
    served_again = asyncio.Event()
    stop = asyncio.Event()

    async def traffic() -> None:
        while not stop.is_set():
            with contextlib.suppress(psycopg.Error, PoolTimeout):
                async with pool.connection(timeout=1.0) as conn:
                    await conn.execute("SELECT 1")
                served_at.append(time.monotonic())
                if served_at[-1] > back_at:
                    served_again.set()
            await asyncio.sleep(0.2)

    task = asyncio.create_task(traffic())
    try:
        await asyncio.to_thread(postgres.stop)
        down_at = time.monotonic()
        await asyncio.sleep(outage)  # the outage itself
        await asyncio.to_thread(postgres.start)
        back_at = time.monotonic()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(served_again.wait(), outage * 3 + 30)
        served = [t for t in served_at if t > down_at]
        return (served[0] - back_at) if served else float("inf")
    finally:
        stop.set()
        await task
        await pool.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--outages", type=float, nargs="+", default=[10.0, 30.0, 60.0])
    args = parser.parse_args()
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)  # a warning per failed attempt
    postgres = Postgres(Path(tempfile.mkdtemp(prefix="hookpipe-bench-pg-")))
    postgres.start()
    rows = []
    try:
        for outage in args.outages:
            default = asyncio.run(recovery_lag(postgres, outage, DEFAULT_RECONNECT_TIMEOUT))
            ours = asyncio.run(recovery_lag(postgres, outage, RECONNECT_TIMEOUT_SECONDS))
            rows.append((outage, default, ours))
            print(f"outage {outage:g} s: default {default:.1f} s, worker {ours:.1f} s", flush=True)
    finally:
        postgres.remove()
    print()
    print(
        "| Postgres down for | first connection after it is back: psycopg_pool default "
        f"(reconnect_timeout {DEFAULT_RECONNECT_TIMEOUT:g} s) | worker "
        f"(reconnect_timeout {RECONNECT_TIMEOUT_SECONDS:g} s) |"
    )
    print("| ---: | ---: | ---: |")
    for outage, default, ours in rows:
        print(f"| {outage:g} s | {default:.1f} s | {ours:.1f} s |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
