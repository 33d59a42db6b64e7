"""``python -m hookpipe_devstack run``: the whole pipeline on 127.0.0.1 until Ctrl-C/SIGTERM."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from hookpipe_devstack.prereqs import MissingPrerequisite
from hookpipe_devstack.processes import StackError
from hookpipe_devstack.services import REPO
from hookpipe_devstack.stack import Stack

SAMPLE = {
    "lp_lead_id": "LP-1001",
    "lp_request_uuid": "6b1f9d3e-8f3c-4d8a-9c52-2b7d1f1e0a11",
    "lp_status": "ACCEPTED",
    "lp_campaign_id": "2024",
    "lp_supplier_id": "77",
    "lp_lead_date_utc": "2026-11-26 09:00:00",
    "first_name": "Ada",
    "email": "ada@example.com",
}


def sample_curl(stack: Stack) -> str:
    body = json.dumps(SAMPLE, separators=(",", ":"))
    return (
        f"curl -sS -X POST {stack.ingest.url}/webhooks/leadprosper \\\n"
        f"  -H {shlex.quote('Authorization: Bearer ' + stack.token)} \\\n"
        f"  -H 'Content-Type: application/json' \\\n"
        f"  -d {shlex.quote(body)}"
    )


def run(state_dir: Path) -> int:
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    stack = Stack(state_dir)
    print(
        "hookpipe: starting the local stack (Pub/Sub emulator, BigQuery emulator, "
        "PostgreSQL, worker, ingest)...",
        flush=True,
    )
    try:
        stack.start()
    except MissingPrerequisite as exc:
        print(f"hookpipe: cannot start the local stack.\n{exc}", file=sys.stderr)
        return 69  # EX_UNAVAILABLE
    except StackError as exc:
        print(f"hookpipe: {exc}", file=sys.stderr)
        return 70
    try:
        env_file = stack.write_dev_env()
        shown_env = env_file.relative_to(REPO) if env_file.is_relative_to(REPO) else env_file
        print(
            f"""
hookpipe is running.

  ingest     {stack.ingest.url}   (POST /webhooks/leadprosper, GET /healthz, GET /readyz)
  worker     {stack.worker.url}   (Pub/Sub pushes to /pubsub/push)
  Pub/Sub    {stack.pubsub.host}   (emulator, project {stack.project_id})
  BigQuery   {stack.bigquery.url}   (emulator, dataset hookpipe)
  Postgres   {stack.postgres.url}
  logs       {state_dir / "logs"}

In another shell:  source {shown_env}

Send a sample LeadProsper webhook:

{sample_curl(stack)}

Then see it in Postgres:
  psql "$DATABASE_URL" -c 'select event_id, source, payload from hookpipe.events'

Ctrl-C stops everything.""",
            flush=True,
        )
        while not stop.wait(0.5):
            for name, service in (("ingest", stack.ingest), ("worker", stack.worker)):
                if service.process is not None and not service.process.alive():
                    print(
                        f"hookpipe: {name} exited:\n{service.process.log_tail()}", file=sys.stderr
                    )
                    stop.set()
    finally:
        print("\nhookpipe: stopping...", flush=True)
        stack.stop()
        print("hookpipe: stopped.", flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m hookpipe_devstack")
    parser.add_argument("command", choices=["run"])
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path(os.environ.get("HOOKPIPE_STATE_DIR", REPO / ".hookpipe")),
    )
    args = parser.parse_args()
    return run(args.state_dir)


if __name__ == "__main__":
    sys.exit(main())
