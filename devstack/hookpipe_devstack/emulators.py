"""The Google Cloud emulators of the stack: Pub/Sub (the official one), BigQuery (local-bigquery,
in its own virtualenv) and Cloud Storage (fake-gcs-server)."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from hookpipe_devstack import REPO, prereqs
from hookpipe_devstack.processes import ManagedProcess, StackError, free_port, http_ok


@dataclass
class PubSubEmulator:
    state_dir: Path
    port: int = field(default_factory=free_port)
    process: ManagedProcess | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        launcher = prereqs.pubsub_emulator()
        prereqs.java()
        env = dict(os.environ)
        env.setdefault("JAVA_TOOL_OPTIONS", "-Xmx512m")
        self.process = ManagedProcess(
            "pubsub-emulator",
            [str(launcher), "--host=127.0.0.1", f"--port={self.port}"],
            self.state_dir / "logs/pubsub-emulator.log",
            env=env,
        )
        self.process.start()
        self.process.wait_ready(lambda: http_ok(f"http://{self.host}/"), timeout)

    def stop(self) -> None:
        if self.process:
            self.process.stop()


@dataclass
class BigQueryEmulator:
    """local-bigquery 0.3.2 in its own Python 3.13 virtualenv, installed from a hashed lock."""

    state_dir: Path
    port: int = field(default_factory=free_port)
    grpc_port: int = field(default_factory=free_port)
    process: ManagedProcess | None = None

    @property
    def home(self) -> Path:
        return self.state_dir / "bigquery-emulator"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def install(self) -> Path:
        """Create the venv and install DuckDB's extensions where DuckDB looks ($HOME/.duckdb)."""
        venv = self.home / "venv"
        lock = REPO / "devstack/bigquery-emulator/requirements.txt"
        stamp = venv / ".hookpipe-lock"
        lock_text = lock.read_text()
        if not (stamp.is_file() and stamp.read_text() == lock_text):
            uv = prereqs.uv()
            python = prereqs.python313()
            env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
            subprocess.run(
                [uv, "venv", "-q", "--clear", "--python", python, str(venv)], check=True, env=env
            )
            subprocess.run(
                [
                    uv,
                    "pip",
                    "install",
                    "-q",
                    "--require-hashes",
                    "--python",
                    str(venv / "bin/python"),
                    "-r",
                    str(lock),
                ],
                check=True,
                env=env,
            )
            install = (
                "import duckdb, glob, sys\n"
                "con = duckdb.connect()\n"
                "for f in glob.glob(sys.argv[1] + '/**/*.duckdb_extension', recursive=True):\n"
                "    con.execute(f\"INSTALL '{f}'\")\n"
            )
            site = next((venv / "lib").glob("python3.13/site-packages"))
            subprocess.run(
                [str(venv / "bin/python"), "-c", install, str(site)],
                check=True,
                env={**os.environ, "HOME": str(self.home)},
            )
            stamp.write_text(lock_text)
        return venv

    def start(self, timeout: float = 60.0) -> None:
        venv = self.install()
        data = self.home / "data"
        data.mkdir(parents=True, exist_ok=True)
        self.process = ManagedProcess(
            "bigquery-emulator",
            [
                str(venv / "bin/local-bigquery"),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--grpc-port",
                str(self.grpc_port),
                "--data-dir",
                str(data),
            ],
            self.state_dir / "logs/bigquery-emulator.log",
            env={**os.environ, "HOME": str(self.home)},
        )
        self.process.start()
        self.process.wait_ready(
            lambda: http_ok(f"{self.url}/bigquery/v2/projects/probe/datasets"), timeout
        )

    def stop(self) -> None:
        if self.process:
            self.process.stop()


def create_bucket(storage_url: str, bucket: str) -> None:
    """Create ``bucket`` on the Cloud Storage emulator at ``storage_url`` (idempotent)."""
    response = httpx.post(
        f"{storage_url}/storage/v1/b", params={"project": "local"}, json={"name": bucket}
    )
    if response.status_code not in (200, 409):
        raise StackError(f"could not create bucket {bucket}: {response.text}")


@dataclass
class StorageEmulator:
    """fake-gcs-server on 127.0.0.1, in memory: the spool's Cloud Storage. It refuses a create
    with ``if_generation_match=0`` when the object exists (412), which the spool relies on; its
    stderr goes to a log file (a pipe nobody reads fills and blocks it: platform notes)."""

    state_dir: Path
    port: int = field(default_factory=free_port)
    process: ManagedProcess | None = None
    bucket: str = "hookpipe-spool"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        binary = prereqs.fake_gcs_server()
        self.process = ManagedProcess(
            "storage-emulator",
            [
                str(binary),
                "-scheme",
                "http",
                "-backend",
                "memory",
                "-host",
                "127.0.0.1",
                "-port",
                str(self.port),
                "-external-url",
                self.url,
                "-log-level",
                "warn",
            ],
            self.state_dir / "logs/storage-emulator.log",
        )
        self.process.start()
        self.process.wait_ready(lambda: http_ok(f"{self.url}/storage/v1/b"), timeout)
        self.create_bucket()

    def create_bucket(self) -> None:
        create_bucket(self.url, self.bucket)

    def stop(self) -> None:
        if self.process:
            self.process.stop()
