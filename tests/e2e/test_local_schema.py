"""The local stack's BigQuery setup on a state directory an older checkout made: columns the
schema file gained since are added, and columns it relaxed are relaxed, so the worker's rows are
not refused for them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from google.cloud import bigquery
from hookpipe.bigquery import bigquery_client
from hookpipe_devstack.schema import apply_bigquery

from tests.support import StackHandle

pytestmark = pytest.mark.stack
SCHEMA_FILE = Path(__file__).resolve().parents[2] / "infra/bigquery/raw_events.schema.json"


def test_columns_added_to_the_schema_file_reach_an_existing_table(stack: StackHandle) -> None:
    project = "hookpipe-older-checkout"  # its own project on the emulator: the suite's is untouched
    client = bigquery_client(project, stack.stack.bigquery.url)
    fields = [bigquery.SchemaField.from_api_repr(f) for f in json.loads(SCHEMA_FILE.read_text())]
    client.create_dataset(f"{project}.hookpipe", exists_ok=True)
    client.create_table(bigquery.Table(f"{project}.hookpipe.raw_events", schema=fields[:-2]))

    apply_bigquery(client, project)

    table = client.get_table(f"{project}.hookpipe.raw_events")
    assert [f.name for f in table.schema] == [f.name for f in fields]
    apply_bigquery(client, project)  # and again: nothing left to add, nothing fails


def test_a_column_the_schema_file_now_allows_to_be_null_is_relaxed(stack: StackHandle) -> None:
    """dead_letters.data became NULLABLE (a dead letter too large for a BigQuery row keeps its
    data in Postgres only): an older checkout's table, where it is REQUIRED, is relaxed."""
    project = "hookpipe-required-data"
    client = bigquery_client(project, stack.stack.bigquery.url)
    schema_file = SCHEMA_FILE.with_name("dead_letters.schema.json")
    fields = [
        bigquery.SchemaField(f["name"], f["type"], mode="REQUIRED")
        if f["name"] == "data"
        else bigquery.SchemaField.from_api_repr(f)
        for f in json.loads(schema_file.read_text())
    ]
    client.create_dataset(f"{project}.hookpipe", exists_ok=True)
    client.create_table(bigquery.Table(f"{project}.hookpipe.dead_letters", schema=fields))

    apply_bigquery(client, project)

    table = client.get_table(f"{project}.hookpipe.dead_letters")
    assert {f.name: f.mode for f in table.schema}["data"] == "NULLABLE"
    assert [f.name for f in table.schema] == [
        f["name"] for f in json.loads(schema_file.read_text())
    ]
