"""ingest and worker as the stack runs them: functions-framework in ASGI mode, as on Cloud Run."""

from __future__ import annotations

import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

from hookpipe_devstack import REPO
from hookpipe_devstack.processes import ManagedProcess, StackError, free_port, http_ok


@dataclass
class PythonService:
    """ingest or worker, served by functions-framework in ASGI mode as on Cloud Run."""

    name: str  # "ingest" or "worker"
    state_dir: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    process: ManagedProcess | None = None
    # The checkout whose code it runs: this one, or (benchmarks) a baseline checked out elsewhere,
    # whose service and shared packages then come first on the path.
    source: Path = REPO

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        executable = Path(sys.executable).parent / "functions-framework"
        env = {**os.environ, **self.env, "PORT": str(self.port)}
        if self.source != REPO:
            env["PYTHONPATH"] = f"{self.source / self.name}:{self.source / 'shared'}"
        self.process = ManagedProcess(
            self.name,
            [
                str(executable),
                f"--target={self.name}",
                f"--source={self.source / self.name / 'main.py'}",
                "--asgi",
                "--host=127.0.0.1",
                f"--port={self.port}",
            ],
            self.state_dir / f"logs/{self.name}.log",
            env=env,
            cwd=self.source,
        )
        self.process.start()
        self.process.wait_ready(lambda: http_ok(f"{self.url}/healthz"), timeout)

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
            return new is not None and new != old and http_ok(f"{self.url}/healthz")

        self.process.wait_ready(replaced, 60)
        new = self.serving_pid()
        assert new is not None
        return new
