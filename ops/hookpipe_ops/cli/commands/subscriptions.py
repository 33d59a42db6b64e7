"""``hookpipe subscriptions``: live subscription settings against the settings file."""

from __future__ import annotations

import argparse
import json
from typing import Any

import click
from google.cloud.pubsub_v1 import SubscriberClient

from hookpipe_ops.cli import subscriptions as subs
from hookpipe_ops.cli.common import (
    EXIT_DIFF,
    EXIT_OK,
    as_args,
    common_options,
    emit,
    err,
    out,
    project_id,
    topology_of,
)
from hookpipe_ops.cli.tables import settings_table
from hookpipe_ops.errors import UsageError
from hookpipe_ops.topology import Topology

EXAMPLES = {
    "show": "hookpipe subscriptions show hookpipe-worker-push",
    "diff": "hookpipe subscriptions diff --push-endpoint https://worker-xyz.a.run.app",
    "apply": "hookpipe subscriptions apply --profile local",
    "set": "hookpipe subscriptions set hookpipe-worker-push ack_deadline_seconds 120",
}
endpoint_option = click.option(
    "--push-endpoint", envvar="WORKER_URL", help="the worker's base URL (default: $WORKER_URL)"
)
name_argument = click.argument("name", required=False)


def _spec_keys(args: argparse.Namespace, topology: Topology) -> list[str]:
    if args.name:
        by_name = {spec.name: key for key, spec in topology.subscriptions.items()}
        key = by_name.get(args.name, args.name)
        topology.subscription(key)
        return [key]
    return list(topology.subscriptions)


def _live(subscriber: SubscriberClient, project: str, name: str) -> dict[str, Any]:
    path = subscriber.subscription_path(project, name)
    return subs.live_settings(subscriber.get_subscription(subscription=path))


def subscriptions_show(args: argparse.Namespace) -> int:
    topology, project = topology_of(args), project_id(args)
    with SubscriberClient() as subscriber:
        live = {
            topology.subscriptions[k].name: _live(
                subscriber, project, topology.subscriptions[k].name
            )
            for k in _spec_keys(args, topology)
        }

    def render() -> None:
        for name, settings in live.items():
            out.print(settings_table(name, list(settings.items()), ("field", "live")))

    emit(args, live, render)
    return EXIT_OK


def _differences(
    args: argparse.Namespace,
    topology: Topology,
    subscriber: SubscriberClient,
) -> dict[str, tuple[dict[str, Any], dict[str, Any], list[subs.Difference]]]:
    project = project_id(args)
    result = {}
    for key in _spec_keys(args, topology):
        spec = topology.subscriptions[key]
        live = _live(subscriber, project, spec.name)
        desired = subs.desired_settings(spec, args.push_endpoint)
        result[spec.name] = (live, desired, subs.diff(live, desired))
    return result


def _warn(topology: Topology) -> None:
    for warning in subs.check_topology(topology):
        err.print(f"[yellow]warning:[/] {warning}")


def subscriptions_diff(args: argparse.Namespace) -> int:
    topology = topology_of(args)
    _warn(topology)
    with SubscriberClient() as subscriber:
        found = _differences(args, topology, subscriber)
    data = {
        name: [{"field": d.field, "live": d.live, "file": d.desired} for d in diffs]
        for name, (_, _, diffs) in found.items()
    }

    def render() -> None:
        for name, (_, _, diffs) in found.items():
            if not diffs:
                out.print(f"{name}: matches the file")
                continue
            out.print(
                settings_table(
                    name, [(d.field, d.live, d.desired) for d in diffs], ("field", "live", "file")
                )
            )

    emit(args, data, render)
    return EXIT_DIFF if any(data.values()) else EXIT_OK


def subscriptions_apply(args: argparse.Namespace) -> int:
    topology, project = topology_of(args), project_id(args)
    _warn(topology)
    changes: dict[str, Any] = {}
    with SubscriberClient() as subscriber:
        for name, (live, desired, diffs) in _differences(args, topology, subscriber).items():
            if not diffs:
                changes[name] = {"changed": []}
                continue
            fields = {d.field for d in diffs}
            request, mask = subs.update_request(project, name, subs.merged(live, desired), fields)
            subscriber.update_subscription(subscription=request, update_mask=mask)
            after = _live(subscriber, project, name)
            changes[name] = {
                "changed": sorted(fields),
                "update_mask": list(mask.paths),
                "before": {f: live[f] for f in sorted(fields)},
                "after": {f: after[f] for f in sorted(fields)},
            }

    def render() -> None:
        for name, change in changes.items():
            if not change["changed"]:
                out.print(f"{name}: already matches the file")
                continue
            out.print(
                settings_table(
                    f"{name} (update mask: {', '.join(change['update_mask'])})",
                    [(f, change["before"][f], change["after"][f]) for f in change["changed"]],
                    ("field", "before", "after"),
                )
            )

    emit(args, changes, render)
    return EXIT_OK


def subscriptions_set(args: argparse.Namespace) -> int:
    if args.field not in subs.FIELDS:
        raise UsageError(f"unknown field {args.field!r}; one of: {', '.join(subs.FIELDS)}")
    topology, project = topology_of(args), project_id(args)
    [key] = _spec_keys(args, topology)
    spec = topology.subscriptions[key]
    value = subs.parse_value(args.field, args.value)
    with SubscriberClient() as subscriber:
        live = _live(subscriber, project, spec.name)
        candidate = subs.merged(live, {args.field: value})
        subs.validate(spec, candidate)
        request, mask = subs.update_request(project, spec.name, candidate, {args.field})
        subscriber.update_subscription(subscription=request, update_mask=mask)
        after = _live(subscriber, project, spec.name)
    data = {
        "subscription": spec.name,
        "field": args.field,
        "before": live[args.field],
        "after": after[args.field],
    }
    file_value = subs.desired_settings(spec, args.push_endpoint).get(args.field)

    def render() -> None:
        out.print(
            settings_table(
                spec.name,
                [(args.field, live[args.field], after[args.field])],
                ("field", "before", "after"),
            )
        )

    emit(args, data, render)
    if file_value is not None and file_value != after[args.field]:
        err.print(
            f"[yellow]warning:[/] {spec.name} now drifts from {args.file or 'the file'}; "
            f"to keep this value, set subscriptions.{key}.{args.field} = "
            f"{json.dumps(after[args.field])} (it is {json.dumps(file_value)}), "
            "or run `hookpipe subscriptions apply` to go back"
        )
    return EXIT_OK


@click.group("subscriptions", help="Tune subscriptions from the settings file.")
def group() -> None:
    pass


@group.command(
    "show", help="Live settings of the file's subscriptions.", epilog=f"example: {EXAMPLES['show']}"
)
@common_options
@endpoint_option
@name_argument
def show_command(**params: Any) -> int:
    return subscriptions_show(as_args(params))


@group.command(
    "diff",
    help="Live settings against the file, field by field (exit code 3 when they differ).",
    epilog=f"example: {EXAMPLES['diff']}",
)
@common_options
@endpoint_option
@name_argument
def diff_command(**params: Any) -> int:
    return subscriptions_diff(as_args(params))


@group.command(
    "apply",
    help="Update only the fields that differ from the file (with an update mask), showing "
    "before and after.",
    epilog=f"example: {EXAMPLES['apply']}",
)
@common_options
@endpoint_option
@name_argument
def apply_command(**params: Any) -> int:
    return subscriptions_apply(as_args(params))


@group.command(
    "set",
    help="Emergency change of one live field; warns that the file now drifts.",
    epilog=f"example: {EXAMPLES['set']}",
)
@common_options
@endpoint_option
@click.argument("name")
@click.argument("field")
@click.argument("value")
def set_command(**params: Any) -> int:
    return subscriptions_set(as_args(params))
