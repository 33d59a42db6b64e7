"""``hookpipe smoke``: a deployed pipeline, end to end."""

from __future__ import annotations

import os

import click
import requests

from hookpipe_ops import smoke
from hookpipe_ops.cli.common import EXIT_OK, EXIT_SMOKE_FAILED, err, out, project_option
from hookpipe_ops.errors import SmokeFailed, UsageError


def smoke_run(
    *,
    project: str | None,
    ingest_url: str,
    source: str,
    token: str | None,
    token_env: str,
    bigquery_table: str | None,
    bigquery_endpoint: str | None,
    database_url: str | None,
    timeout: float,
    no_rows: bool,
) -> int:
    if not token:
        raise UsageError(f"set {token_env} to an active token of source {source!r}")
    if not no_rows and not bigquery_table and not project:
        raise UsageError("no project: pass --project or --bigquery-table, or --no-rows")
    table = None if no_rows else bigquery_table or f"{project}.hookpipe.raw_events"
    target = smoke.Target(ingest_url, token, source)
    with requests.Session() as http:
        try:
            finders: list[smoke.RowFinder] = []
            if table:
                finders.append(smoke.BigQueryRows(table, bigquery_endpoint))
                if database_url:
                    finders.append(smoke.PostgresRows(database_url))
            for passed in smoke.run(http, target, finders, timeout):
                out.print(f"[green]smoke: ok[/] {passed}")
        except (SmokeFailed, requests.RequestException) as exc:
            err.print(f"[red]smoke: failed[/] {exc}")
            return EXIT_SMOKE_FAILED
    out.print("smoke: passed")
    return EXIT_OK


@click.command(
    "smoke",
    help="Health, a refused wrong token, then a token-authenticated webhook in and its row out "
    "(BigQuery; Postgres too when the database URL variable is set). Exit code 5 on failure.",
    epilog="example: HOOKPIPE_SMOKE_TOKEN=… hookpipe smoke https://hookpipe-ingest-xyz.a.run.app",
)
@project_option
@click.argument("ingest_url")
@click.option("--source", default="leadprosper", show_default=True, help="a token-scheme source")
@click.option(
    "--token-env",
    default="HOOKPIPE_SMOKE_TOKEN",
    show_default=True,
    help="variable holding the source's token",
)
@click.option("--bigquery-table", help="raw events table (default: PROJECT.hookpipe.raw_events)")
@click.option(
    "--bigquery-endpoint",
    envvar="HOOKPIPE_BIGQUERY_ENDPOINT",
    help="BigQuery emulator URL (default: $HOOKPIPE_BIGQUERY_ENDPOINT; unset in the cloud)",
)
@click.option(
    "--database-url-env",
    default="HOOKPIPE_SMOKE_DATABASE_URL",
    show_default=True,
    help="variable holding a Postgres URL to look for the row in too (unset: BigQuery only)",
)
@click.option(
    "--timeout", type=float, default=90.0, show_default=True, help="seconds to wait for the row"
)
@click.option("--no-rows", is_flag=True, help="skip the row-out check")
def command(
    project: str | None,
    ingest_url: str,
    source: str,
    token_env: str,
    bigquery_table: str | None,
    bigquery_endpoint: str | None,
    database_url_env: str,
    timeout: float,
    no_rows: bool,
) -> int:
    # The token and the database URL are named by options and read from the variables they
    # name: an operator's shell or a CI secret holds them, never the command line.
    return smoke_run(
        project=project,
        ingest_url=ingest_url,
        source=source,
        token=os.environ.get(token_env),
        token_env=token_env,
        bigquery_table=bigquery_table,
        bigquery_endpoint=bigquery_endpoint,
        database_url=os.environ.get(database_url_env),
        timeout=timeout,
        no_rows=no_rows,
    )
