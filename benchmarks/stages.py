"""CPU per event by stage of the worker's serving process, sampled with py-spy while a benchmark
loads it (`make bench-worker BASELINE=… PROFILE=1`).

py-spy records the process's stacks (active threads only) as collapsed text; each sample is
given to the stage of the innermost frame that names one (``STAGES``: function names, so trees
whose modules moved are compared alike), else to the request's own HTTP and ASGI handling, else
"other". CPU per event is a stage's samples over the sampling rate, over the events committed.
"""

from __future__ import annotations

import re
import signal
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

PY_SPY = Path(__file__).resolve().parents[1] / ".venv/bin/py-spy"
RATE = 200  # samples a second
# Stage -> function names that start it; the innermost match in a stack wins.
STAGES: dict[str, tuple[str, ...]] = {
    "decode (push envelope, CloudEvent)": ("decode_delivery", "from_message", "_decode"),
    "problems scan": ("storable", "bounded", "_scan", "clean"),
    "size bound": ("size_bound", "fit_bigquery", "bigquery_row_bytes", "_measure"),
    "build_row (normalize, map columns)": ("build_row", "map_columns", "normalize"),
    "current-state upsert": ("upsert_current_state", "upsert_table", "fold", "params"),
    "Postgres statement": ("insert", "_insert", "keep_first_received", "delete", "_arrays"),
    "BigQuery request": (
        "insert_rows_json",
        "bigquery_row",
        "requests",
        "send",
        "insert",
        "encode",
        "encode_rows",
        "_proto_value",
        "_append",
        "_send",
        "append",
        "_read",
        "_outgoing",
    ),
    "group commit (batcher)": ("submit", "_flush", "_run", "_drain"),
}
# Which files a stage's names must come from (``insert`` or ``clean`` alone are common).
STAGE_FILES = {
    "decode (push envelope, CloudEvent)": ("delivery", "event", "push", "process"),
    "problems scan": ("problems", "rows", "mapping", "payload"),
    "size bound": ("rows",),
    "build_row (normalize, map columns)": ("rows", "mapping", "payload"),
    "Postgres statement": ("postgres", "psycopg"),
    "BigQuery request": ("bigquery", "storage_write"),
    "group commit (batcher)": ("batching",),
    "current-state upsert": ("current_state", "postgres"),
}
HTTP_FILES = ("starlette", "uvicorn", "functions_framework", "gunicorn", "app.py", "asyncio")
FRAME = re.compile(r"^(?P<name>[^ ]+) \((?P<file>[^:)]*)")


@dataclass
class Profile:
    samples: Counter[str] = field(default_factory=Counter)
    events: int = 0

    def add(self, other: Profile) -> None:
        self.samples.update(other.samples)
        self.events += other.events

    def cpu_ms_per_event(self, stage: str) -> float:
        return self.samples[stage] / RATE * 1000 / max(self.events, 1)

    @property
    def total_ms_per_event(self) -> float:
        return sum(self.samples.values()) / RATE * 1000 / max(self.events, 1)


def stage_of(stack: list[str]) -> str:
    """The stage of one sampled stack (root first, as py-spy writes it)."""
    for frame in reversed(stack):
        match = FRAME.match(frame)
        if match is None:
            continue
        name, file = match["name"].rsplit(".", 1)[-1], match["file"]
        for stage, names in STAGES.items():
            if name in names and any(f in file for f in STAGE_FILES.get(stage, ("",))):
                return stage
    if any(any(f in frame for f in HTTP_FILES) for frame in stack):
        return "HTTP, ASGI, event loop"
    return "other"


def parse(collapsed: str) -> Counter[str]:
    counts: Counter[str] = Counter()
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            counts[stage_of(stack.split(";"))] += int(count)
    return counts


class Recorder:
    """py-spy recording ``pid`` until :meth:`stop`."""

    def __init__(self, pid: int, output: Path) -> None:
        self._output = output
        self._process = subprocess.Popen(
            [
                str(PY_SPY),
                "record",
                "--pid",
                str(pid),
                "--rate",
                str(RATE),
                "--format",
                "raw",
                "--output",
                str(output),
                "--nonblocking",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self, events: int) -> Profile:
        self._process.send_signal(signal.SIGINT)
        self._process.wait(60)
        text = self._output.read_text() if self._output.exists() else ""
        return Profile(parse(text), events)
