"""Shared fixtures. The real local stack starts once per test session (``stack``), not per test."""

from __future__ import annotations

import os
import random
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import StackHandle

# One fuzz seed per test session, chosen here so that the report header names it
# (tests/fuzz reads it): each run explores new cases, and any run can be replayed.
os.environ.setdefault("HOOKPIPE_FUZZ_SEED", str(random.SystemRandom().randrange(2**32)))


def pytest_report_header(config: pytest.Config) -> str:
    seed = os.environ["HOOKPIPE_FUZZ_SEED"]
    return f"fuzz seed: {seed} (replay a run with HOOKPIPE_FUZZ_SEED={seed})"


# On a failed stack test, the tail of each service's log goes into the report: CI keeps no
# state directory, and a timeout alone does not say which hop stopped.
LOG_TAIL_LINES = {"worker": 40, "ingest": 10, "pubsub": 20, "postgres": 10, "bigquery": 10}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Iterator[pytest.TestReport]:
    report: pytest.TestReport = yield
    handle = getattr(item, "funcargs", {}).get("stack")
    if report.failed and report.when == "call" and isinstance(handle, StackHandle):
        for name, lines in LOG_TAIL_LINES.items():
            process = getattr(handle.stack, name).process
            if process is not None:
                report.sections.append(
                    (f"{name} log (last {lines} lines)", process.log_tail(lines))
                )
    return report


@pytest.fixture(scope="session")
def stack() -> Iterator[StackHandle]:
    """The whole pipeline on 127.0.0.1: Pub/Sub emulator, BigQuery emulator, PostgreSQL, worker
    and ingest, with the topology (local profile) and schemas applied. Skips with the reason when
    a prerequisite (Java + Pub/Sub emulator, PostgreSQL binaries) is missing on this machine, but
    fails under ``CI`` (set by CI systems and by .ci/run): there a skip would lose every
    end-to-end test from a green run."""
    from hookpipe_devstack.prereqs import MissingPrerequisite
    from hookpipe_devstack.stack import Stack

    state_dir = Path(tempfile.mkdtemp(prefix="hookpipe-test-stack-"))
    stack = Stack(state_dir, project_id="hookpipe-test")
    try:
        stack.start()
    except MissingPrerequisite as exc:
        shutil.rmtree(state_dir, ignore_errors=True)
        if os.environ.get("CI"):
            pytest.fail(f"local stack unavailable under CI: {exc}", pytrace=False)
        pytest.skip(f"local stack unavailable: {exc}")
    saved = {k: os.environ.get(k) for k in ("PUBSUB_EMULATOR_HOST",)}
    os.environ["PUBSUB_EMULATOR_HOST"] = stack.pubsub.host
    handle = StackHandle(stack)
    try:
        yield handle
    finally:
        handle.close()
        stack.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(state_dir, ignore_errors=True)
