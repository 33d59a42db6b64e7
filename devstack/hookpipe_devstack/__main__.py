"""``python -m hookpipe_devstack run``: the whole pipeline on 127.0.0.1 until Ctrl-C/SIGTERM."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from hookpipe_devstack import REPO
from hookpipe_devstack.emulators import create_bucket
from hookpipe_devstack.prereqs import MissingPrerequisite
from hookpipe_devstack.processes import StackError
from hookpipe_devstack.stack import Stack, prepare, running_stack, stop_orphans

SAMPLE = {
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


class StopRequested:
    """SIGINT/SIGTERM handler that only records the signal.

    A Python signal handler runs in the main thread between any two bytecodes, including in the
    middle of its own previous run, so it must take no lock: ``threading.Event.set()`` here
    deadlocked when a second SIGTERM (make forwards its process group's to its child) arrived
    while the first was inside ``Event.set()``. Appending to a list takes none.
    """

    def __init__(self) -> None:
        self.signals: list[int] = []

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.signals.append(signum)

    def __bool__(self) -> bool:
        return bool(self.signals)


def say(text: str, *, error: bool = False) -> None:
    """Print, unless nobody reads any more: ``make run | tee run.log`` and Ctrl-C kill tee with
    the stack, and a print raising BrokenPipeError must not skip stopping the services."""
    stream = sys.stderr if error else sys.stdout
    try:
        print(text, file=stream, flush=True)
    except (BrokenPipeError, ValueError):  # ValueError: already closed after the first one
        with contextlib.suppress(OSError):
            stream.close()


def previous_stack_stopped(state_dir: Path) -> bool:
    """False (and says why) when another ``make run`` holds ``state_dir``; stops what an earlier
    one left running without its supervisor (which should not happen: each service gets a signal
    when its supervisor dies)."""
    running = running_stack(state_dir)
    supervisor = running.pop("supervisor", None)
    if supervisor is not None:
        pids = ", ".join(f"{name} {pid}" for name, pid in running.items())
        say(
            f"hookpipe: a stack is already running from {state_dir} (its supervisor is pid "
            f"{supervisor}; {pids}).\nStop it with Ctrl-C where it runs, or: kill {supervisor}",
            error=True,
        )
        return False
    if running:
        say(f"hookpipe: stopping what an earlier stack left running: {running}", error=True)
        stop_orphans(running)
    return True


def run(state_dir: Path) -> int:
    stopping = StopRequested()
    signal.signal(signal.SIGINT, stopping)
    signal.signal(signal.SIGTERM, stopping)
    if not previous_stack_stopped(state_dir):
        return 75  # EX_TEMPFAIL
    stack = Stack(state_dir)
    say(
        "hookpipe: starting the local stack (Pub/Sub emulator, BigQuery emulator, "
        "PostgreSQL, worker, ingest)..."
    )
    try:
        stack.start()
    except MissingPrerequisite as exc:
        say(f"hookpipe: cannot start the local stack.\n{exc}", error=True)
        return 69  # EX_UNAVAILABLE
    except StackError as exc:
        say(f"hookpipe: {exc}", error=True)
        return 70
    try:
        env_file = stack.write_dev_env()
        shown_env = env_file.relative_to(REPO) if env_file.is_relative_to(REPO) else env_file
        say(
            f"""
hookpipe is running.

  ingest     {stack.ingest.url}   (POST /webhooks/leadprosper, GET /healthz, GET /readyz)
  worker     {stack.worker.url}   (Pub/Sub pushes to /pubsub/push)
  Pub/Sub    {stack.pubsub.host}   (emulator, project {stack.project_id})
  BigQuery   {stack.bigquery.url}   (emulator, dataset hookpipe)
  Postgres   {stack.postgres.url}
  Storage    {stack.storage.url}   (emulator, spool bucket {stack.storage.bucket}; drained every \
{stack.drain_every_seconds:g} s)
  logs       {state_dir / "logs"}

In another shell:  source {shown_env}

Send a sample LeadProsper webhook:

{sample_curl(stack)}

Then see it in Postgres:
  psql "$DATABASE_URL" -c 'select event_id, source, payload from hookpipe.events'

Reconcile with LeadProsper (a stand-in of its API, {stack.leadprosper_url}; load leads with
PUT /_standin/leads, docs/reconcile.md):
  source {shown_env} && .venv/bin/hookpipe reconcile leadprosper --since 48h --dry-run

Ctrl-C stops everything."""
        )
        while not stopping:
            time.sleep(0.2)
            for name, service in (("ingest", stack.ingest), ("worker", stack.worker)):
                if service.process is not None and not service.process.alive():
                    say(f"hookpipe: {name} exited:\n{service.process.log_tail()}", error=True)
                    stopping(0, None)
    finally:
        say("\nhookpipe: stopping...")
        stack.stop()
        say("hookpipe: stopped.")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m hookpipe_devstack")
    commands = parser.add_subparsers(dest="command", required=True)
    run_cmd = commands.add_parser("run", help="start the whole pipeline until Ctrl-C")
    run_cmd.add_argument(
        "--state-dir",
        type=Path,
        default=Path(os.environ.get("HOOKPIPE_STATE_DIR", REPO / ".hookpipe")),
    )
    setup = commands.add_parser(
        "setup", help="create topology and schemas on running services (docker-compose's job)"
    )
    env = os.environ.get
    setup.add_argument("--project", default=env("HOOKPIPE_PROJECT_ID", "hookpipe-local"))
    setup.add_argument("--pubsub-host", default=env("PUBSUB_EMULATOR_HOST"))
    setup.add_argument("--bigquery-url", default=env("HOOKPIPE_BIGQUERY_ENDPOINT"))
    setup.add_argument("--database-url", default=env("HOOKPIPE_DATABASE_URL"))
    setup.add_argument("--worker-url", default=env("WORKER_URL"))
    setup.add_argument("--storage-url", default=env("STORAGE_EMULATOR_HOST"))
    setup.add_argument("--spool-bucket", default=env("HOOKPIPE_SPOOL_BUCKET"))
    args = parser.parse_args()
    if args.command == "setup":
        needed = ("pubsub_host", "bigquery_url", "database_url", "worker_url")
        missing = [name for name in needed if not getattr(args, name)]
        if missing:
            parser.error("setup needs " + ", ".join("--" + m.replace("_", "-") for m in missing))
        prepare(
            args.project,
            pubsub_host=args.pubsub_host,
            bigquery_url=args.bigquery_url,
            database_url=args.database_url,
            worker_url=args.worker_url,
        )
        if args.storage_url and args.spool_bucket:
            create_bucket(args.storage_url, args.spool_bucket)
        print("hookpipe: topology, schemas and spool bucket are in place", flush=True)
        return 0
    return run(args.state_dir)


if __name__ == "__main__":
    sys.exit(main())
