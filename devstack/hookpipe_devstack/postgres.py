"""A throwaway PostgreSQL cluster for the stack (the worker's Supabase sink)."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from hookpipe_devstack import prereqs
from hookpipe_devstack.processes import ManagedProcess, free_port, port_open

NOBODY = 65534


def _traversable_by_others(path: Path) -> bool:
    """Whether every directory from / down to ``path`` lets other users through."""
    path = path.resolve()
    for directory in [path, *path.parents]:
        if directory.exists() and not directory.stat().st_mode & stat.S_IXOTH:
            return False
    return True


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
            death_signal=signal.SIGINT,  # fast shutdown: it does not wait for its clients
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
