"""The whole local pipeline: emulators, PostgreSQL, topology, schemas, ingest and worker."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shlex
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from google.cloud.pubsub_v1 import PublisherClient, SubscriberClient
from hookpipe.bigquery import bigquery_client
from hookpipe_ops.topology import ensure_topology, load_topology

from hookpipe_devstack import REPO
from hookpipe_devstack.emulators import BigQueryEmulator, PubSubEmulator, StorageEmulator
from hookpipe_devstack.postgres import Postgres
from hookpipe_devstack.processes import ManagedProcess, StackError, free_port, process_start_time
from hookpipe_devstack.schema import apply_bigquery, apply_migrations
from hookpipe_devstack.services import PythonService

DEFAULT_PROJECT = "hookpipe-local"


def prepare(
    project_id: str, *, pubsub_host: str, bigquery_url: str, database_url: str, worker_url: str
) -> None:
    """Create the Pub/Sub topology (local profile) and apply both sinks' schemas; idempotent.

    Used by the local stack and by docker-compose's one-shot ``setup`` job.
    """
    os.environ["PUBSUB_EMULATOR_HOST"] = pubsub_host
    publisher = PublisherClient()
    subscriber = SubscriberClient()
    try:
        ensure_topology(
            project_id,
            load_topology(REPO / "infra/pubsub/subscriptions.json", profile="local"),
            push_base_url=worker_url,
            publisher=publisher,
            subscriber=subscriber,
        )
    finally:
        subscriber.close()
        publisher.stop()
    client = bigquery_client(project_id, bigquery_url)
    try:
        apply_bigquery(client, project_id)
    finally:
        client.close()
    apply_migrations(database_url)


@dataclass
class Stack:
    state_dir: Path
    project_id: str = DEFAULT_PROJECT
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    pubsub: PubSubEmulator = field(init=False)
    bigquery: BigQueryEmulator = field(init=False)
    postgres: Postgres = field(init=False)
    storage: StorageEmulator = field(init=False)
    ingest: PythonService = field(init=False)
    worker: PythonService = field(init=False)
    drainer: ManagedProcess = field(init=False)
    # LeadProsper's API cannot run here: a stand-in serves its documented shapes and limits.
    leadprosper: ManagedProcess = field(init=False)
    leadprosper_port: int = field(default_factory=free_port)
    leadprosper_key: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    extra_env: dict[str, str] = field(default_factory=dict)
    # How often the local spool drainer makes a pass (production: a Cloud Run job every minute).
    drain_every_seconds: float = 1.0

    def __post_init__(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.pubsub = PubSubEmulator(self.state_dir)
        self.bigquery = BigQueryEmulator(self.state_dir)
        self.postgres = Postgres(self.state_dir)
        self.storage = StorageEmulator(self.state_dir)
        self.ingest = PythonService("ingest", self.state_dir, {})
        self.worker = PythonService("worker", self.state_dir, {})
        self.drainer = ManagedProcess(
            "spool-drainer",
            [
                sys.executable,
                "-m",
                "hookpipe_ingest.drain",
                "drain",
                "--every",
                f"{self.drain_every_seconds:g}",
            ],
            self.state_dir / "logs/spool-drainer.log",
        )
        self.leadprosper = self._standin_process()

    def _standin_process(self) -> ManagedProcess:
        return ManagedProcess(
            "leadprosper-standin",
            [
                sys.executable,
                "-m",
                "hookpipe_devstack.leadprosper_standin",
                "--port",
                str(self.leadprosper_port),
                # One argument: a random key may begin with "-", which argparse would take for
                # an option (the stand-in then refused to start).
                f"--api-key={self.leadprosper_key}",
            ],
            self.state_dir / "logs/leadprosper-standin.log",
        )

    @property
    def leadprosper_url(self) -> str:
        """The stand-in's base URL, as HOOKPIPE_LEADPROSPER_API_URL takes it."""
        return f"http://127.0.0.1:{self.leadprosper_port}/public"

    # -- environment -------------------------------------------------------------------------
    def service_env(self) -> dict[str, str]:
        """What ingest and worker read (HOOKPIPE_* settings) plus the emulator hosts."""
        return {
            "HOOKPIPE_PROJECT_ID": self.project_id,
            "GOOGLE_CLOUD_PROJECT": self.project_id,
            "PUBSUB_EMULATOR_HOST": self.pubsub.host,
            "BIGQUERY_EMULATOR_HOST": self.bigquery.url,
            "HOOKPIPE_BIGQUERY_ENDPOINT": self.bigquery.url,
            "HOOKPIPE_BIGQUERY_STORAGE_ENDPOINT": f"127.0.0.1:{self.bigquery.grpc_port}",
            "HOOKPIPE_DATABASE_URL": self.postgres.url,
            "HOOKPIPE_SOURCES_FILE": str(REPO / "infra/sources.toml"),
            "HOOKPIPE_LEADPROSPER_TOKENS": self.token,
            "HOOKPIPE_PUSH_AUTH": "none",  # the emulator's push sends no OIDC token
            "HOOKPIPE_TOPOLOGY_FILE": str(REPO / "infra/pubsub/subscriptions.json"),
            "STORAGE_EMULATOR_HOST": self.storage.url,
            "HOOKPIPE_SPOOL_BUCKET": self.storage.bucket,
            **self.extra_env,
        }

    def dev_env(self) -> dict[str, str]:
        return {
            "INGEST_URL": self.ingest.url,
            "WORKER_URL": self.worker.url,
            "DATABASE_URL": self.postgres.url,
            "HOOKPIPE_LEADPROSPER_API_URL": self.leadprosper_url,
            "HOOKPIPE_LEADPROSPER_API_KEY": self.leadprosper_key,
            # `hookpipe trace` reads the services' request lines from their log files here.
            "HOOKPIPE_LOGS_DIR": str(self.state_dir / "logs"),
            **self.service_env(),
        }

    def write_dev_env(self) -> Path:
        path = self.state_dir / "dev.env"
        lines = [f"export {k}={shlex.quote(v)}" for k, v in sorted(self.dev_env().items())]
        path.write_text(
            "# Written by `make run`; `source` it in another shell.\n" + "\n".join(lines) + "\n"
        )
        path.chmod(0o600)  # holds the dev token
        return path

    def pids(self) -> dict[str, int]:
        services = {
            "pubsub-emulator": self.pubsub.process,
            "bigquery-emulator": self.bigquery.process,
            "postgres": self.postgres.process,
            "storage-emulator": self.storage.process,
            "ingest": self.ingest.process,
            "worker": self.worker.process,
            "spool-drainer": self.drainer,
            "leadprosper-standin": self.leadprosper,
        }
        return {name: p.pid for name, p in services.items() if p is not None and p.pid}

    # -- lifecycle ---------------------------------------------------------------------------
    def start_backends(self) -> None:
        self.pubsub.start()
        self.bigquery.start()
        self.postgres.start()
        self.storage.start()
        self.start_leadprosper()

    def start_leadprosper(self, tries: int = 3) -> None:
        """Start the stand-in, ready when *it* answers on its port: a port taken meanwhile by
        another server (free_port only says it was free a moment ago) is tried again with
        another."""
        for attempt in range(1, tries + 1):
            self.leadprosper.start()
            try:
                self.leadprosper.wait_ready(self._leadprosper_answers, 30)
            except StackError:
                self.leadprosper.stop()
                if attempt == tries:
                    raise
                self.leadprosper_port = free_port()
                self.leadprosper = self._standin_process()
            else:
                return

    def _leadprosper_answers(self) -> bool:
        base = self.leadprosper_url.removesuffix("/public")
        try:
            response = httpx.get(f"{base}/_standin/requests", timeout=1.0)
        except httpx.HTTPError:
            return False
        return response.status_code == 200 and "served" in response.json()

    def prepare(self) -> None:
        """Create the topology (local profile) and apply the schemas; idempotent."""
        prepare(
            self.project_id,
            pubsub_host=self.pubsub.host,
            bigquery_url=self.bigquery.url,
            database_url=self.postgres.url,
            worker_url=self.worker.url,
        )

    def restart_pubsub(self) -> None:
        """Start the (in-memory) emulator again on its port and re-create the topology."""
        self.pubsub.start()
        self.prepare()

    def start_services(self) -> None:
        env = self.service_env()
        self.worker.env = env
        self.ingest.env = env
        self.worker.start()
        self.ingest.start()
        self.start_drainer()

    def start_drainer(self) -> None:
        self.drainer.env = {**os.environ, **self.service_env()}
        self.drainer.start()

    def start(self) -> None:
        try:
            self.start_backends()
            self.prepare()
            self.start_services()
            write_pid_file(self.state_dir, {"supervisor": os.getpid(), **self.pids()})
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every service at once: each gets SIGTERM, and SIGKILL after ``timeout``, so the
        whole stack is down within about that long rather than the sum of its parts."""
        stoppers = [
            lambda: self.leadprosper.stop(timeout),
            lambda: self.drainer.stop(timeout),
            lambda: self.ingest.stop(),
            lambda: self.worker.stop(),
            lambda: self.storage.stop(),
            lambda: self.bigquery.stop(),
            lambda: self.pubsub.stop(),
            self.postgres.remove,
        ]
        with ThreadPoolExecutor(len(stoppers)) as pool:
            for future in [pool.submit(stop) for stop in stoppers]:
                future.result()


PID_FILE = "pids.json"


def write_pid_file(state_dir: Path, pids: dict[str, int]) -> None:
    """Who holds ``state_dir``: each process's pid and start time (:func:`running_stack`)."""
    entries = {name: {"pid": pid, "started": process_start_time(pid)} for name, pid in pids.items()}
    (state_dir / PID_FILE).write_text(json.dumps(entries, indent=1))


def running_stack(state_dir: Path) -> dict[str, int]:
    """The processes of an earlier stack on ``state_dir`` that still run (by pid *and* start
    time, so a reused pid is not taken for one of them)."""
    try:
        entries = json.loads((state_dir / PID_FILE).read_text())
    except (OSError, ValueError):
        return {}
    running = {}
    for name, entry in entries.items() if isinstance(entries, dict) else ():
        if not isinstance(entry, dict) or not isinstance(entry.get("pid"), int):
            continue
        started = process_start_time(entry["pid"])
        if started is not None and started == entry.get("started"):
            running[name] = entry["pid"]
    return running


def stop_orphans(pids: dict[str, int], timeout: float = 10.0) -> None:
    """SIGTERM each orphaned service's process group, SIGKILL what is left after ``timeout``."""
    for signum, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        for pid in pids.values():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signum)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and any(process_start_time(p) for p in pids.values()):
            time.sleep(0.1)
