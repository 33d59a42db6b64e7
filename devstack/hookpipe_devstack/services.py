"""The stack's services: real Pub/Sub and BigQuery emulators, PostgreSQL, ingest and worker."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from hookpipe_devstack import prereqs
from hookpipe_devstack.processes import ManagedProcess, StackError, free_port, port_open

REPO = Path(__file__).resolve().parents[2]
NOBODY = 65534


def _traversable_by_others(path: Path) -> bool:
    """Whether every directory from / down to ``path`` lets other users through."""
    path = path.resolve()
    for directory in [path, *path.parents]:
        if directory.exists() and not directory.stat().st_mode & stat.S_IXOTH:
            return False
    return True


def _http_ok(url: str, expect: int = 200) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == expect
    except httpx.HTTPError:
        return False


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
        self.process.wait_ready(lambda: _http_ok(f"http://{self.host}/"), timeout)

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
            lambda: _http_ok(f"{self.url}/bigquery/v2/projects/probe/datasets"), timeout
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
        self.process.wait_ready(lambda: _http_ok(f"{self.url}/storage/v1/b"), timeout)
        self.create_bucket()

    def create_bucket(self) -> None:
        create_bucket(self.url, self.bucket)

    def stop(self) -> None:
        if self.process:
            self.process.stop()


@dataclass
class Postgres:
    """A throwaway PostgreSQL cluster on 127.0.0.1, run as an unprivileged user under root."""

    state_dir: Path
    port: int = field(default_factory=free_port)
    process: ManagedProcess | None = None
    database: str = "hookpipe"

    root: Path | None = None

    def __post_init__(self) -> None:
        self.root = self.state_dir / "postgres"
        if self._user() is not None and not _traversable_by_others(self.state_dir):
            # e.g. pytest's 0700 temp dirs: the server's unprivileged user could not reach it.
            self.root = Path(tempfile.mkdtemp(prefix="hookpipe-postgres-"))
            self.root.chmod(0o755)

    @property
    def data_dir(self) -> Path:
        assert self.root is not None
        return self.root / "data"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.database}"

    def _user(self) -> int | None:
        return NOBODY if os.geteuid() == 0 else None

    def _chown(self, path: Path) -> None:
        user = self._user()
        if user is not None:
            os.chown(path, user, user)

    def init(self) -> None:
        bindir = prereqs.postgres_bindir()
        root = self.data_dir.parent
        if (self.data_dir / "PG_VERSION").is_file():
            return
        shutil.rmtree(root / "data", ignore_errors=True)
        root.mkdir(parents=True, exist_ok=True)
        (root / "sock").mkdir(exist_ok=True)
        for path in (root, root / "sock"):
            self._chown(path)
        subprocess.run(
            [
                str(bindir / "initdb"),
                "--no-sync",
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "-D",
                str(self.data_dir),
            ],
            check=True,
            capture_output=True,
            user=self._user(),
            group=self._user(),
            extra_groups=[] if self._user() is not None else None,
        )

    def start(self, timeout: float = 30.0) -> None:
        self.init()
        bindir = prereqs.postgres_bindir()
        self.process = ManagedProcess(
            "postgres",
            [
                str(bindir / "postgres"),
                "-D",
                str(self.data_dir),
                "-p",
                str(self.port),
                "-k",
                str(self.data_dir.parent / "sock"),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=200",
            ],
            self.state_dir / "logs/postgres.log",
            user=self._user(),
        )
        self.process.start()
        self.process.wait_ready(lambda: self._accepting(), timeout)
        self._create_database()

    def _accepting(self) -> bool:
        import psycopg

        if not port_open(self.port):
            return False
        try:
            with psycopg.connect(
                f"postgresql://postgres@127.0.0.1:{self.port}/postgres", connect_timeout=2
            ):
                return True
        except psycopg.OperationalError:
            return False

    def _create_database(self) -> None:
        import psycopg

        with psycopg.connect(
            f"postgresql://postgres@127.0.0.1:{self.port}/postgres", autocommit=True
        ) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)
            ).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{self.database}"')

    def stop(self) -> None:
        if self.process:
            # SIGINT is PostgreSQL's "fast shutdown": roll back open transactions and exit.
            self.process.signal(2)
            self.process.stop()

    def remove(self) -> None:
        """Stop and delete the cluster's files (it is throwaway)."""
        self.stop()
        shutil.rmtree(self.data_dir.parent, ignore_errors=True)


@dataclass
class PythonService:
    """ingest or worker, served by functions-framework in ASGI mode as on Cloud Run."""

    name: str  # "ingest" or "worker"
    state_dir: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        executable = Path(sys.executable).parent / "functions-framework"
        self.process = ManagedProcess(
            self.name,
            [
                str(executable),
                f"--target={self.name}",
                f"--source={REPO / self.name / 'main.py'}",
                "--asgi",
                "--host=127.0.0.1",
                f"--port={self.port}",
            ],
            self.state_dir / f"logs/{self.name}.log",
            env={**os.environ, **self.env, "PORT": str(self.port)},
            cwd=REPO,
        )
        self.process.start()
        self.process.wait_ready(lambda: _http_ok(f"{self.url}/healthz"), timeout)

    def stop(self) -> None:
        if self.process:
            self.process.stop()

    def kill(self) -> None:
        if self.process:
            self.process.kill()

    def serving_pid(self) -> int | None:
        """The process serving requests: gunicorn's worker, a child of the supervising master
        that holds the listening socket (as Cloud Run's front end does for an instance)."""
        if self.process is None or self.process.pid is None:
            return None
        pid = self.process.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        return int(children[0]) if children else None

    def crash_serving_process(self) -> int:
        """SIGKILL the serving process mid-flight; the master starts a new one. Returns the new
        serving pid once it answers /healthz."""
        old = self.serving_pid()
        if old is None:
            raise StackError(f"{self.name} has no serving process")
        os.kill(old, signal.SIGKILL)
        assert self.process is not None

        def replaced() -> bool:
            new = self.serving_pid()
            return new is not None and new != old and _http_ok(f"{self.url}/healthz")

        self.process.wait_ready(replaced, 60)
        new = self.serving_pid()
        assert new is not None
        return new


__all__ = [
    "BigQueryEmulator",
    "Postgres",
    "PubSubEmulator",
    "PythonService",
    "StackError",
    "StorageEmulator",
    "create_bucket",
]
