"""``hookpipe smoke``: a signed webhook in, a row out.

deploy.yml runs it against the new ingest revision's tagged URL before that revision takes
traffic, and against the service URL after promotion (then the new worker writes the row too);
an operator runs it by hand the same way. Each step is one function that raises
:class:`SmokeFailed` with what it saw; :func:`run` stops at the first failure.

The LeadProsper token scheme is what it speaks (the first sender, and the one whose credentials
are a plain token an operator can hold in ``HOOKPIPE_SMOKE_TOKEN``).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

import requests
from google.api_core.exceptions import GoogleAPICallError
from google.auth.exceptions import GoogleAuthError

from hookpipe_ops.errors import SmokeFailed

TABLE_ID = re.compile(r"[a-z][a-z0-9:.-]*\.\w+\.\w+")  # project (may be domain:name)
HTTP_TIMEOUT_SECONDS = 15.0  # senders' own timeout: a slower answer is already a failure


class RowFinder(Protocol):
    """Where a committed event shows up: BigQuery's raw table, or Postgres."""

    name: str

    def has_event(self, event_id: str) -> bool: ...


@dataclass(frozen=True)
class Target:
    ingest_url: str
    token: str
    source: str = "leadprosper"

    @property
    def webhook_url(self) -> str:
        return f"{self.ingest_url.rstrip('/')}/webhooks/{self.source}"


def _expect(response: requests.Response, status: int, step: str) -> requests.Response:
    if response.status_code != status:
        raise SmokeFailed(
            f"{step}: expected {status}, got {response.status_code}: {response.text[:300]}"
        )
    return response


def check_health(http: requests.Session, target: Target) -> str:
    for path in ("/healthz", "/readyz"):
        _expect(
            http.get(f"{target.ingest_url.rstrip('/')}{path}", timeout=HTTP_TIMEOUT_SECONDS),
            200,
            path,
        )
    return "/healthz and /readyz answer 200"


def check_rejects_wrong_token(http: requests.Session, target: Target) -> str:
    response = http.post(
        target.webhook_url,
        json={"lp_request_uuid": "smoke-wrong-token", "lp_status": "SMOKE"},
        headers={"Authorization": f"Bearer smoke-wrong-{uuid.uuid4().hex}"},
        timeout=HTTP_TIMEOUT_SECONDS,
    )
    _expect(response, 401, "wrong token")
    return "a wrong token is refused with 401"


def send_webhook(http: requests.Session, target: Target, request_uuid: str) -> str:
    """Post a LeadProsper-shaped lead; return the event id ingest answered with."""
    response = http.post(
        target.webhook_url,
        json={
            "lp_request_uuid": request_uuid,
            "lp_status": "SMOKE",
            "lp_campaign_id": "smoke",
        },
        headers={"Authorization": f"Bearer {target.token}"},
        timeout=HTTP_TIMEOUT_SECONDS,
    )
    event_id = _expect(response, 202, "signed webhook").json().get("event_id")
    if not isinstance(event_id, str) or not event_id:
        raise SmokeFailed(f"signed webhook: 202 without an event id: {response.text[:300]}")
    return event_id


def wait_for_row(
    finder: RowFinder,
    event_id: str,
    timeout: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Poll until the event's row is committed; back off from 0.5 s to 5 s between looks."""
    deadline, pause = clock() + timeout, 0.5
    while True:
        if finder.has_event(event_id):
            return f"event {event_id} is in {finder.name}"
        if clock() >= deadline:
            raise SmokeFailed(f"row out: event {event_id} not in {finder.name} after {timeout:g}s")
        sleep(min(pause, max(0.0, deadline - clock())))
        pause = min(pause * 2, 5.0)


def run(
    http: requests.Session,
    target: Target,
    finders: list[RowFinder],
    row_timeout: float,
) -> Iterator[str]:
    """Yield one line per passed step; raise :class:`SmokeFailed` at the first failure."""
    yield check_health(http, target)
    yield check_rejects_wrong_token(http, target)
    event_id = send_webhook(http, target, f"smoke-{uuid.uuid4()}")
    yield f"a token-authenticated webhook is accepted with 202 (event {event_id})"
    for finder in finders:
        yield wait_for_row(finder, event_id, row_timeout)


# -- row finders: created only when asked for, so the CLI does not need them installed --------
class BigQueryRows:
    def __init__(self, table_id: str, endpoint: str | None = None) -> None:
        from google.cloud import bigquery
        from hookpipe.bigquery import bigquery_client

        if not TABLE_ID.fullmatch(table_id):
            raise SmokeFailed(f"BigQuery table {table_id!r} is not PROJECT.DATASET.TABLE")
        self._bigquery = bigquery
        try:
            self._client = bigquery_client(table_id.rsplit(".", 2)[0], endpoint)
        except GoogleAuthError as exc:
            raise SmokeFailed(f"row out: no credentials to read BigQuery: {exc}") from None
        self._table_id = table_id
        self.name = f"BigQuery ({table_id})"

    def has_event(self, event_id: str) -> bool:
        job = self._client.query(  # table names cannot be parameters; TABLE_ID checked it
            f"SELECT COUNT(*) AS n FROM `{self._table_id}` WHERE event_id = @event_id",  # noqa: S608
            job_config=self._bigquery.QueryJobConfig(
                query_parameters=[
                    self._bigquery.ScalarQueryParameter("event_id", "STRING", event_id)
                ]
            ),
        )
        try:
            return any(row["n"] for row in job.result())
        except GoogleAPICallError as exc:
            raise SmokeFailed(f"row out: cannot read {self.name}: {exc}") from None


class PostgresRows:
    def __init__(self, database_url: str, table: str = "hookpipe.events") -> None:
        self._database_url = database_url
        self._table = table
        self.name = f"Postgres ({table})"

    def has_event(self, event_id: str) -> bool:
        import psycopg
        from psycopg import sql

        from hookpipe_ops.database import connect

        query = sql.SQL("SELECT 1 FROM {} WHERE event_id = %s").format(
            sql.Identifier(*self._table.split("."))
        )
        try:
            with connect(self._database_url, "HOOKPIPE_SMOKE_DATABASE_URL") as conn:
                return conn.execute(query, (event_id,)).fetchone() is not None
        except psycopg.Error as exc:
            raise SmokeFailed(f"row out: cannot read {self.name}: {exc}") from None
