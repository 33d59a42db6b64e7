"""Apply infra/'s schema files to the local sinks: the same files Terraform and Supabase use."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
from google.api_core.exceptions import Conflict
from google.cloud import bigquery

from hookpipe_devstack import REPO

BIGQUERY_DIR = REPO / "infra/bigquery"
MIGRATIONS_DIR = REPO / "infra/supabase/migrations"


def apply_bigquery(client: bigquery.Client, project_id: str) -> None:
    """Create the dataset, the raw events and dead-letter archive tables (partitioned,
    clustered) and the dedup view."""
    spec = json.loads((BIGQUERY_DIR / "tables.json").read_text())
    dataset = spec["dataset"]
    client.create_dataset(f"{project_id}.{dataset}", exists_ok=True)
    for key in ("raw_table", "dead_letters_table"):
        _apply_table(client, f"{project_id}.{dataset}", spec[key])
    view_spec = spec["dedup_view"]
    view = bigquery.Table(f"{project_id}.{dataset}.{view_spec['name']}")
    view.view_query = view_spec["query"].format(project=project_id, dataset=dataset)
    try:
        client.create_table(view)
    except Conflict:  # an older checkout's view: bring it up to this one's query
        if client.get_table(view.reference).view_query != view.view_query:
            client.delete_table(view.reference)
            client.create_table(view)


def _apply_table(client: bigquery.Client, dataset: str, raw: dict[str, Any]) -> None:
    """Create a partitioned, clustered table from its schema file, or bring an older checkout's
    table up to it as BigQuery allows (add the columns it lacks, relax those it requires), so
    rows written as the file says are not refused."""
    schema = [
        bigquery.SchemaField.from_api_repr(field)
        for field in json.loads((BIGQUERY_DIR / raw["schema_file"]).read_text())
    ]
    table = bigquery.Table(f"{dataset}.{raw['name']}", schema=schema)
    table.time_partitioning = bigquery.TimePartitioning(
        type_=raw["time_partitioning"]["type"], field=raw["time_partitioning"]["field"]
    )
    table.clustering_fields = raw["clustering"]
    existing = client.create_table(table, exists_ok=True)
    wanted = {field.name: field for field in schema}
    # A column the file now allows to be NULL is relaxed (REQUIRED -> NULLABLE, as BigQuery allows).
    relaxed = [
        wanted[f.name] if f.name in wanted and f.mode == "REQUIRED" != wanted[f.name].mode else f
        for f in existing.schema
    ]
    present = {field.name for field in existing.schema}
    missing = [field for field in schema if field.name not in present]
    if missing or relaxed != list(existing.schema):
        existing.schema = [*relaxed, *missing]
        client.update_table(existing, ["schema"])


def apply_migrations(database_url: str, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply each ``<version>_<name>.sql`` not yet applied, in order, recording it where the
    Supabase CLI does (``supabase_migrations.schema_migrations``). Returns the versions applied."""
    applied: list[str] = []
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS supabase_migrations")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS supabase_migrations.schema_migrations "
            "(version text PRIMARY KEY, name text, statements text[])"
        )
        done = {
            row[0]
            for row in conn.execute("SELECT version FROM supabase_migrations.schema_migrations")
        }
        for path in sorted(directory.glob("*.sql")):
            version, _, name = path.stem.partition("_")
            if version in done:
                continue
            sql = path.read_text()
            with conn.transaction():
                conn.execute(sql.encode())
                conn.execute(
                    "INSERT INTO supabase_migrations.schema_migrations VALUES (%s, %s, %s)",
                    (version, name, [sql]),
                )
            applied.append(version)
    return applied
