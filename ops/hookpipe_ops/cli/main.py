"""``hookpipe``: the operator CLI, on click. Works the same against the local emulator
(``PUBSUB_EMULATOR_HOST`` set, e.g. ``source .hookpipe/dev.env``) and Google Cloud. Each command
group is a module of :mod:`hookpipe_ops.cli` that turns options into typed parameters and calls
one operation (modules of :mod:`hookpipe_ops` outside ``cli/``); shared options and plumbing are
in :mod:`hookpipe_ops.cli.common`.

Exit codes: 0 done (``diff``: no differences) · 1 Pub/Sub, database or unexpected error (``trace``:
an event has not landed in both sinks) · 2 invalid usage or settings (``trace``: nothing matched)
· 3 ``diff`` found differences · 4 ``replay`` left messages it could not republish · 5 ``smoke``
failed a check · 6 ``reconcile``: another run holds the lease.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import click
import psycopg
from google.api_core.exceptions import GoogleAPICallError
from google.auth.exceptions import GoogleAuthError
from hookpipe.errors import error_class
from hookpipe.logging import configure_logging

from hookpipe_ops.cli import dlq as dlq_commands
from hookpipe_ops.cli import reconcile as reconcile_commands
from hookpipe_ops.cli import smoke as smoke_commands
from hookpipe_ops.cli import subscriptions as subscription_commands
from hookpipe_ops.cli import trace as trace_commands
from hookpipe_ops.cli.common import EXIT_ERROR, EXIT_USAGE, err, safe
from hookpipe_ops.errors import TopologyError, UsageError


@click.group(
    help="Operate hookpipe: dead letters, subscriptions, smoke tests, reconciles and traces."
)
def cli() -> None:
    pass


cli.add_command(dlq_commands.group)
cli.add_command(subscription_commands.group)
cli.add_command(smoke_commands.command)
cli.add_command(reconcile_commands.group)
cli.add_command(trace_commands.command)


def main(argv: Sequence[str] | None = None) -> int:
    # Audit lines (one per replayed message) go to stderr as Cloud Logging JSON.
    configure_logging(os.environ.get("HOOKPIPE_PROJECT_ID", "hookpipe"), "INFO", stream=sys.stderr)
    try:
        result = cli.main(args=list(argv) if argv is not None else None, standalone_mode=False)
    except click.exceptions.Exit as exit_:  # --help
        return int(exit_.exit_code)
    except click.ClickException as exc:  # the command's words are off: click says which
        exc.show()
        return EXIT_USAGE
    except click.Abort:
        return EXIT_ERROR
    except (UsageError, TopologyError) as exc:
        err.print(f"[red]hookpipe:[/] {safe(str(exc))}")
        return EXIT_USAGE
    except GoogleAuthError as exc:  # before any call: the clients found no credentials
        err.print(
            f"[red]hookpipe: no Google credentials[/] ({safe(error_class(exc))}): run "
            "`gcloud auth application-default login`, or for the local stack "
            "`source .hookpipe/dev.env` (it sets PUBSUB_EMULATOR_HOST)"
        )
        return EXIT_ERROR
    except GoogleAPICallError as exc:
        err.print(f"[red]hookpipe: Pub/Sub error:[/] {safe(str(exc))}")
        return EXIT_ERROR
    except psycopg.Error as exc:
        err.print(f"[red]hookpipe: archive database error:[/] {safe(f'{error_class(exc)}: {exc}')}")
        return EXIT_ERROR
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
