"""What every ``hookpipe`` command shares: consoles, exit codes, reading the common options, and
printing sender-controlled text safely. Commands live in :mod:`hookpipe_ops.cli.commands`, one
module per group."""

from __future__ import annotations

import argparse
import json
import os
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import psycopg
from google.cloud.pubsub_v1 import SubscriberClient
from psycopg.conninfo import conninfo_to_dict
from rich.console import Console
from rich.markup import escape

from hookpipe_ops.deadletters import Filters, parse_attribute_filters, parse_time
from hookpipe_ops.errors import UsageError
from hookpipe_ops.topology import DEFAULT_TOPOLOGY_FILE, Topology, load_topology

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_DIFF, EXIT_REPLAY_FAILED, EXIT_SMOKE_FAILED = 0, 1, 2, 3, 4, 5
out = Console()
err = Console(stderr=True)


def project_id(args: argparse.Namespace) -> str:
    project = (
        args.project
        or os.environ.get("HOOKPIPE_PROJECT_ID")
        or os.environ.get("GOOGLE_CLOUD_PROJECT")
    )
    if not project:
        raise UsageError("no project: pass --project or set HOOKPIPE_PROJECT_ID")
    return str(project)


def topology_of(args: argparse.Namespace) -> Topology:
    return load_topology(args.file, profile=args.profile)


def emit(args: argparse.Namespace, data: Any, render: Any) -> None:
    if args.json:
        print(json.dumps(data, indent=2, default=str))
    else:
        render()


def filters_of(args: argparse.Namespace) -> Filters:
    now = datetime.now(UTC)
    try:
        return Filters(
            attributes=parse_attribute_filters(args.attr or []),
            error_classes=frozenset(args.error_class or []),
            sources=frozenset(args.source or []),
            message_ids=frozenset(args.message_id or []),
            since=parse_time(args.since, now) if args.since else None,
            until=parse_time(args.until, now) if args.until else None,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def dlq_subscription(args: argparse.Namespace, topology: Topology) -> str:
    name = args.subscription or topology.subscription("dead-letter-pull").name
    return str(SubscriberClient.subscription_path(project_id(args), name))


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def safe(text: str) -> str:
    """``text`` as rich should print it when a sender controls it: markup escaped (``[/]``
    raised MarkupError), control characters shown as ``\\xNN`` instead of reaching the
    operator's terminal (``\\x1b[41m`` would recolour it)."""
    return escape(_CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text))


def age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def archive_connection(args: argparse.Namespace) -> Any:
    """A connection to the Postgres holding the dead-letter archive, or None when no database
    URL was given (the archive is then left out)."""
    url = args.database_url or os.environ.get("HOOKPIPE_DATABASE_URL")
    if not url:
        return None
    return connect(url, "--database-url / HOOKPIPE_DATABASE_URL")


def connect(url: str, named: str) -> psycopg.Connection[Any]:
    """``psycopg.connect(url)``; a URL libpq cannot parse is a usage error that never shows it
    (libpq's message quotes the part it could not parse: often the password)."""
    try:
        conninfo_to_dict(url)
    except psycopg.Error:
        raise UsageError(
            f"{named} is not a PostgreSQL URL libpq can parse (not shown: it holds the "
            "password); percent-encode reserved characters: % as %25, @ as %40, / as %2F"
        ) from None
    return psycopg.connect(url, connect_timeout=10)


# -- options shared by several commands (click decorators) -------------------------------------
type Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def _stack(*decorators: Decorator) -> Decorator:
    def apply(function: Callable[..., Any]) -> Callable[..., Any]:
        for decorator in reversed(decorators):
            function = decorator(function)
        return function

    return apply


project_option = click.option(
    "--project",
    envvar="HOOKPIPE_PROJECT_ID",
    help="Google Cloud project (default: $HOOKPIPE_PROJECT_ID)",
)
common_options = _stack(
    project_option,
    click.option(
        "--file",
        type=click.Path(path_type=Path),
        default=None,
        help=f"subscription settings file (default: {DEFAULT_TOPOLOGY_FILE})",
    ),
    click.option("--profile", envvar="HOOKPIPE_PROFILE", help="a profile of the file, e.g. local"),
    click.option("--json", "json", is_flag=True, help="machine-readable output"),
)
filter_options = _stack(
    click.option("--subscription", help="dead-letter subscription (default: the file's)"),
    click.option(
        "--attr",
        multiple=True,
        metavar="KEY=VALUE",
        help="attribute equals value (repeat a key for alternatives)",
    ),
    click.option("--error-class", multiple=True, help="reason, e.g. RowRejected"),
    click.option("--source", multiple=True, help="webhook source, e.g. leadprosper"),
    click.option("--message-id", multiple=True, help="dead-letter message id"),
    click.option("--since", help="published at or after: ISO 8601 or an age (2h, 7d)"),
    click.option("--until", help="published before: ISO 8601 or an age"),
    click.option(
        "--database-url",
        envvar="HOOKPIPE_DATABASE_URL",
        help="Postgres holding the dead-letter archive (default: $HOOKPIPE_DATABASE_URL)",
    ),
    click.option(
        "--scan-limit",
        type=int,
        default=10000,
        show_default=True,
        help="look at no more than this many messages",
    ),
)


def as_args(params: dict[str, Any]) -> argparse.Namespace:
    """click's parameters as the namespace the command functions read."""
    return argparse.Namespace(**params)
