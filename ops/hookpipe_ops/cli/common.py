"""What every ``hookpipe`` command shares: consoles, exit codes, the options several commands
take, and printing sender-controlled text safely. Each command group is a module beside this one.

Options reach a command as typed parameters (functions-framework's ``_cli.py``); a group of
options that together mean one thing reaches it as one value: ``--project/--file/--profile`` as a
:class:`Target`, the dead-letter filters as a :class:`Selection`. Environment defaults are read by
click's ``envvar=`` only.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import psycopg
from google.cloud.pubsub_v1 import SubscriberClient
from rich.console import Console
from rich.markup import escape

from hookpipe_ops.database import connect
from hookpipe_ops.deadletters import Filters, parse_attribute_filters, parse_time
from hookpipe_ops.errors import UsageError
from hookpipe_ops.topology import DEFAULT_TOPOLOGY_FILE, Topology, load_topology

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_DIFF, EXIT_REPLAY_FAILED, EXIT_SMOKE_FAILED = 0, 1, 2, 3, 4, 5
out = Console()
err = Console(stderr=True)
PROJECT_ENV = ("HOOKPIPE_PROJECT_ID", "GOOGLE_CLOUD_PROJECT")
DATABASE_URL_ENV = "HOOKPIPE_DATABASE_URL"


def emit(as_json: bool, data: Any, render: Callable[[], None]) -> None:
    """``data`` as JSON with ``--json``, else what ``render`` prints."""
    if as_json:
        print(json.dumps(data, indent=2, default=str))
    else:
        render()


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


@dataclass(frozen=True)
class Target:
    """Which project, and which subscription settings (file and profile), a command acts on."""

    project: str | None
    file: Path
    profile: str | None

    @property
    def project_id(self) -> str:
        if not self.project:
            raise UsageError("no project: pass --project or set HOOKPIPE_PROJECT_ID")
        return self.project

    @functools.cached_property
    def topology(self) -> Topology:
        return load_topology(self.file, profile=self.profile)


@dataclass(frozen=True)
class Selection:
    """Which dead letters a command looks at: the filters, where live ones are read from, and
    the archive's database (None: the archive is left out)."""

    filters: Filters
    subscription: str | None
    database_url: str | None
    scan_limit: int

    def subscription_path(self, target: Target) -> str:
        name = self.subscription or target.topology.subscription("dead-letter-pull").name
        return str(SubscriberClient.subscription_path(target.project_id, name))

    def archive(self) -> psycopg.Connection[Any] | None:
        """A connection to the archive's database, or None when no URL was given."""
        if not self.database_url:
            return None
        return connect(self.database_url, f"--database-url / {DATABASE_URL_ENV}")

    def required_archive(self) -> psycopg.Connection[Any]:
        """A connection to the archive's database, or a usage error saying how to give one."""
        conn = self.archive()
        if conn is None:
            raise UsageError(f"--from-archive needs --database-url or {DATABASE_URL_ENV}")
        return conn


# -- options shared by several commands (click decorators) -------------------------------------
type Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def _combined(name: str, build: Callable[..., Any], *options: Decorator) -> Decorator:
    """``options`` whose values reach the command as one parameter, ``name``, made by ``build``
    from them (called with each option's value by its parameter name)."""

    def probe() -> None:
        pass

    for option in options:
        option(probe)
    names = [param.name for param in getattr(probe, "__click_params__", [])]

    def apply(command: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(command)
        def wrapper(**params: Any) -> Any:
            taken = {key: params.pop(key) for key in names}
            return command(**params, **{name: build(**taken)})

        for option in reversed(options):
            wrapper = option(wrapper)  # type: ignore[assignment]
        return wrapper

    return apply


project_option = click.option(
    "--project",
    envvar=list(PROJECT_ENV),
    help="Google Cloud project (default: $HOOKPIPE_PROJECT_ID, else $GOOGLE_CLOUD_PROJECT)",
)
DEFAULT_SOURCES_FILE = Path(__file__).resolve().parents[3] / "infra/sources.toml"
sources_file_option = click.option(
    "--sources-file",
    envvar="HOOKPIPE_SOURCES_FILE",
    type=click.Path(path_type=Path, dir_okay=False),
    default=DEFAULT_SOURCES_FILE,
    help="the sources file ($HOOKPIPE_SOURCES_FILE)",
)
topology_file_option = click.option(
    "--file",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="HOOKPIPE_TOPOLOGY_FILE",
    default=DEFAULT_TOPOLOGY_FILE,
    show_default=True,
    help="subscription settings file ($HOOKPIPE_TOPOLOGY_FILE)",
)
target_options = _combined(
    "target",
    Target,
    project_option,
    topology_file_option,
    click.option("--profile", envvar="HOOKPIPE_PROFILE", help="a profile of the file, e.g. local"),
)
json_option = click.option("--json", "as_json", is_flag=True, help="machine-readable output")


def _selection(
    subscription: str | None,
    attr: tuple[str, ...],
    error_class: tuple[str, ...],
    source: tuple[str, ...],
    message_id: tuple[str, ...],
    since: str | None,
    until: str | None,
    database_url: str | None,
    scan_limit: int,
) -> Selection:
    now = datetime.now(UTC)
    try:
        filters = Filters(
            attributes=parse_attribute_filters(attr),
            error_classes=frozenset(error_class),
            sources=frozenset(source),
            message_ids=frozenset(message_id),
            since=parse_time(since, now) if since else None,
            until=parse_time(until, now) if until else None,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return Selection(filters, subscription, database_url, scan_limit)


selection_options = _combined(
    "selection",
    _selection,
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
        envvar=DATABASE_URL_ENV,
        help=f"Postgres holding the dead-letter archive (default: ${DATABASE_URL_ENV})",
    ),
    click.option(
        "--scan-limit",
        type=int,
        default=10000,
        show_default=True,
        help="look at no more than this many messages",
    ),
)
