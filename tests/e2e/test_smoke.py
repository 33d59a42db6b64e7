"""`hookpipe smoke` against the local stack: what deploy.yml runs against a new revision."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import StackHandle

pytestmark = pytest.mark.stack
HOOKPIPE = str(Path(sys.executable).parent / "hookpipe")


def smoke(
    stack: StackHandle, *argv: str, token: str, database_url: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "HOOKPIPE_PROJECT_ID": stack.project_id,
        "HOOKPIPE_BIGQUERY_ENDPOINT": stack.stack.bigquery.url,
        "HOOKPIPE_SMOKE_TOKEN": token,
        "HOOKPIPE_SMOKE_DATABASE_URL": database_url or stack.stack.postgres.url,
        "COLUMNS": "200",
    }
    return subprocess.run(
        [HOOKPIPE, "smoke", stack.ingest_url, *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        check=False,
    )


def test_passes_when_the_webhook_lands_in_both_sinks(stack: StackHandle) -> None:
    result = smoke(stack, token=stack.token)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "refused with 401" in result.stdout
    accepted = next(line for line in result.stdout.splitlines() if "accepted with 202" in line)
    event_id = accepted.rsplit("event ", 1)[1].rstrip(")")
    assert f"event {event_id} is in BigQuery" in result.stdout
    assert f"event {event_id} is in Postgres" in result.stdout
    assert stack.pg_events([event_id])  # the row it reported is really there
    assert stack.token not in result.stdout + result.stderr


def test_fails_with_exit_5_when_ingest_refuses_the_token(stack: StackHandle) -> None:
    result = smoke(stack, token="not-an-active-token-0000")
    assert result.returncode == 5
    assert "signed webhook: expected 202, got 401" in result.stderr


def test_fails_with_exit_5_when_the_row_cannot_be_looked_up(stack: StackHandle) -> None:
    missing = f"{stack.project_id}.hookpipe.no_such_table"
    result = smoke(stack, "--bigquery-table", missing, "--timeout", "5", token=stack.token)
    assert result.returncode == 5
    assert f"cannot read BigQuery ({missing})" in result.stderr


def test_fails_with_exit_5_when_postgres_cannot_be_read(stack: StackHandle) -> None:
    unreachable = "postgresql://nobody@127.0.0.1:9/none"
    result = smoke(stack, "--timeout", "30", token=stack.token, database_url=unreachable)
    assert result.returncode == 5
    assert "is in BigQuery" in result.stdout  # the first sink was checked and passed
    assert "cannot read Postgres (hookpipe.events)" in result.stderr
