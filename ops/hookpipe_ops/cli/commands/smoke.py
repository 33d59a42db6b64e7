"""``hookpipe smoke``: a deployed pipeline, end to end."""

from __future__ import annotations

import argparse
import os
from typing import Any

import click
import requests

from hookpipe_ops.cli import smoke
from hookpipe_ops.cli.common import (
    EXIT_OK,
    EXIT_SMOKE_FAILED,
    as_args,
    err,
    out,
    project_id,
    project_option,
)
from hookpipe_ops.errors import SmokeFailed, UsageError


def smoke_run(args: argparse.Namespace) -> int:
    token = os.environ.get(args.token_env)
    if not token:
        raise UsageError(f"set {args.token_env} to an active token of source {args.source!r}")
    table = (
        None if args.no_rows else args.bigquery_table or f"{project_id(args)}.hookpipe.raw_events"
    )
    target = smoke.Target(args.ingest_url, token, args.source)
    with requests.Session() as http:
        try:
            finders: list[smoke.RowFinder] = []
            if table:
                finders.append(smoke.BigQueryRows(table, args.bigquery_endpoint))
                if database_url := os.environ.get(args.database_url_env):
                    finders.append(smoke.PostgresRows(database_url))
            for passed in smoke.run(http, target, finders, args.timeout):
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
def command(**params: Any) -> int:
    return smoke_run(as_args(params))
