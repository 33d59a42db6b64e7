"""Migrations against data an older checkout left, on the real PostgreSQL: each in a database of
its own, brought up to the migration before, filled, then migrated."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from hookpipe_devstack.schema import MIGRATIONS_DIR, apply_migrations

from tests.support import StackHandle

pytestmark = pytest.mark.stack
REKEY = "20261203000000"


@pytest.fixture
def database(stack: StackHandle, tmp_path: Path) -> Iterator[str]:
    """A fresh database with every migration before ``REKEY`` applied; its URL."""
    name = f"migrations_{uuid.uuid4().hex[:8]}"
    stack.pg(f'CREATE DATABASE "{name}"')
    url = stack.stack.postgres.url.rsplit("/", 1)[0] + f"/{name}"
    before = tmp_path / "before"
    before.mkdir()
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        if path.name < REKEY:
            shutil.copy(path, before)
    apply_migrations(url, before)
    try:
        yield url
    finally:
        stack.pg(f'DROP DATABASE "{name}" WITH (FORCE)')


def test_current_state_is_re_keyed_on_the_request_uuid(database: str) -> None:
    t0 = datetime(2026, 12, 1, tzinfo=UTC)
    events = {  # event id -> (payload, old key, event_time)
        "e-1": ({"lp_request_uuid": "u-1", "lp_lead_id": "L1"}, "L1", t0),
        "e-2": ({"lp_request_uuid": "u-2"}, "L2", t0),
        "e-3": ({"lp_lead_id": "L3"}, "L3", t0),  # no request uuid: cannot be placed
        # Two old keys for one request uuid: the newer state wins.
        "e-4": ({"lp_request_uuid": "u-4"}, "L4-old", t0),
        "e-5": ({"lp_request_uuid": "u-4"}, "L4-new", t0 + timedelta(hours=1)),
        # An old key that is another row's new one.
        "e-6": ({"lp_request_uuid": "u-7"}, "u-6", t0),
        "e-7": ({"lp_request_uuid": "u-6"}, "u-7", t0),
    }
    with psycopg.connect(database, autocommit=True) as conn:
        for event_id, (payload, key, at) in events.items():
            conn.execute(
                "INSERT INTO hookpipe.events (event_id, source, event_type, received_at, payload)"
                " VALUES (%s, 'leadprosper', 't', %s, %s)",
                (event_id, at, json.dumps(payload)),
            )
            conn.execute(
                "INSERT INTO hookpipe.leadprosper_leads (lead_id, status, event_time, event_id)"
                " VALUES (%s, %s, %s, %s)",
                (key, f"status of {event_id}", at, event_id),
            )
    assert apply_migrations(database)[0] == REKEY  # and any later ones
    with psycopg.connect(database) as conn:
        rows = dict(conn.execute("SELECT lead_id, status FROM hookpipe.leadprosper_leads"))
    assert rows == {
        "u-1": "status of e-1",
        "u-2": "status of e-2",
        "u-4": "status of e-5",
        "u-6": "status of e-7",
        "u-7": "status of e-6",
    }
