"""Helpers the stack tests share: send webhooks, wait for rows, read the dead-letter queue."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import psycopg
from google.api_core.exceptions import DeadlineExceeded
from google.cloud import bigquery
from google.cloud.pubsub_v1 import SubscriberClient
from hookpipe.bigquery import bigquery_client
from hookpipe_devstack.stack import Stack

T = TypeVar("T")


@contextmanager
def postgres_refuses(stack: StackHandle, sqlstate_by_key: dict[str, str]) -> Iterator[None]:
    """While open, Postgres refuses to insert an event whose payload has one of these keys,
    raising that key's SQLSTATE (class 22/23: the row's own fault; else a passing one)."""
    checks = "".join(
        f"IF NEW.payload ? '{key}' THEN RAISE EXCEPTION '{key} (test trigger)' "
        f"USING ERRCODE = '{sqlstate}'; END IF;"
        for key, sqlstate in sqlstate_by_key.items()
    )
    stack.pg(
        "CREATE OR REPLACE FUNCTION hookpipe_test_refuse() RETURNS trigger AS $$ BEGIN "
        f"{checks} RETURN NEW; END $$ LANGUAGE plpgsql;"
        "CREATE TRIGGER hookpipe_test_refuse BEFORE INSERT ON hookpipe.events "
        "FOR EACH ROW EXECUTE FUNCTION hookpipe_test_refuse();"
    )
    try:
        yield
    finally:
        stack.pg(
            "DROP TRIGGER IF EXISTS hookpipe_test_refuse ON hookpipe.events;"
            "DROP FUNCTION IF EXISTS hookpipe_test_refuse();"
        )


def wait_for[T](check: Callable[[], T | None], timeout: float = 30.0, what: str = "condition") -> T:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.1)


def lead(**fields: Any) -> dict[str, Any]:
    """A LeadProsper Campaign Trigger body with a unique request uuid."""
    body = {
        "lp_request_uuid": str(uuid.uuid4()),  # the lead's id (hookpipe.leadprosper_leads key)
        "lp_status": "ACCEPTED",
        "lp_campaign_id": "2024",
        "lp_supplier_id": "77",
        "lp_lead_date_utc": "2026-11-26 09:00:00",
        "first_name": "Ada",
        "email": "ada@example.com",
    }
    body.update(fields)
    return body


@dataclass
class StackHandle:
    stack: Stack
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30.0))
    _bq: bigquery.Client | None = None

    @property
    def ingest_url(self) -> str:
        return self.stack.ingest.url

    @property
    def token(self) -> str:
        return self.stack.token

    @property
    def project_id(self) -> str:
        return self.stack.project_id

    @property
    def bq(self) -> bigquery.Client:
        if self._bq is None:
            self._bq = bigquery_client(self.project_id, self.stack.bigquery.url)
        return self._bq

    def post(
        self,
        body: bytes | str | dict[str, Any],
        *,
        content_type: str = "application/json",
        token: str | None = None,
        source: str = "leadprosper",
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> httpx.Response:
        if isinstance(body, dict):
            body = json.dumps(body)
        all_headers = {"Content-Type": content_type, **(headers or {})}
        if token is None:
            token = self.token
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        return self.http.post(
            f"{self.ingest_url}/webhooks/{source}", content=body, headers=all_headers, params=params
        )

    # -- sinks -------------------------------------------------------------------------------
    def pg(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.stack.postgres.url, autocommit=True) as conn:
            cursor = conn.execute(sql.encode(), tuple(params))
            return cursor.fetchall() if cursor.description else []

    def pg_events(self, event_ids: Iterable[str]) -> dict[str, tuple[Any, ...]]:
        rows = self.pg(
            "SELECT event_id, source, event_type, payload FROM hookpipe.events "
            "WHERE event_id = ANY(%s)",
            [list(event_ids)],
        )
        return {r[0]: r for r in rows}

    def bq_rows(
        self, table: str, event_ids: Iterable[str], columns: str = "source, event_type, payload"
    ) -> list[dict[str, Any]]:
        job = self.bq.query(
            f"SELECT event_id, {columns}"
            f" FROM `{self.project_id}.hookpipe.{table}` WHERE event_id IN UNNEST(@ids)",
            job_config=bigquery.QueryJobConfig(
                query_parameters=[bigquery.ArrayQueryParameter("ids", "STRING", list(event_ids))]
            ),
        )
        return [dict(row) for row in job.result()]

    def wait_committed(self, event_ids: list[str], timeout: float = 60.0) -> None:
        """Until every id is in Postgres (the worker answers 2xx only after both sinks)."""
        wait_for(
            lambda: len(self.pg_events(event_ids)) == len(set(event_ids)) or None,
            timeout,
            f"{len(event_ids)} events in Postgres",
        )

    # -- Pub/Sub -----------------------------------------------------------------------------
    def subscriber(self) -> SubscriberClient:
        return SubscriberClient()

    def take_dead_letters(
        self,
        match: Callable[[dict[str, str], bytes], bool],
        enough: Callable[[list[tuple[dict[str, str], bytes]]], bool],
        *,
        timeout: float = 60.0,
        settle_pulls: int = 0,
    ) -> list[tuple[dict[str, str], bytes]]:
        """Pull the dead-letter subscription, acking the messages ``match`` accepts and releasing
        the rest for other tests, until ``enough`` holds for what was taken and then
        ``settle_pulls`` more pulls brought nothing of ours (so extras would be seen too)."""
        sub = SubscriberClient()
        path = sub.subscription_path(self.project_id, "hookpipe-dead-letter-pull")
        found: list[tuple[dict[str, str], bytes]] = []
        quiet_pulls = 0
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                try:
                    received = sub.pull(
                        subscription=path, max_messages=500, timeout=3
                    ).received_messages
                except DeadlineExceeded:
                    received = []
                ours, others = [], []
                for message in received:
                    attrs = dict(message.message.attributes)
                    if match(attrs, message.message.data):
                        found.append((attrs, message.message.data))
                        ours.append(message.ack_id)
                    else:
                        others.append(message.ack_id)
                if ours:
                    sub.acknowledge(subscription=path, ack_ids=ours)
                if others:
                    sub.modify_ack_deadline(
                        subscription=path, ack_ids=others, ack_deadline_seconds=0
                    )
                if enough(found):
                    quiet_pulls = 0 if ours else quiet_pulls + 1
                    if quiet_pulls >= settle_pulls:
                        break
        finally:
            sub.close()
        return found

    def close(self) -> None:
        self.http.close()
        if self._bq is not None:
            self._bq.close()
