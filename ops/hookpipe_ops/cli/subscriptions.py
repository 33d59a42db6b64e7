"""``hookpipe subscriptions``: live subscription settings against the settings file."""

from __future__ import annotations

import json
from typing import Any

import click
from google.cloud.pubsub_v1 import SubscriberClient

from hookpipe_ops import subscription_settings as subs
from hookpipe_ops.cli.common import (
    EXIT_DIFF,
    EXIT_OK,
    Target,
    emit,
    err,
    json_option,
    out,
    target_options,
)
from hookpipe_ops.cli.tables import settings_table

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


@click.group("subscriptions", help="Tune subscriptions from the settings file.")
def group() -> None:
    pass


def _spec_keys(target: Target, name: str | None) -> list[str]:
    """The file's keys of the subscription ``name`` (its name or its key), or of all of them."""
    topology = target.topology
    if name:
        by_name = {spec.name: key for key, spec in topology.subscriptions.items()}
        key = by_name.get(name, name)
        topology.subscription(key)
        return [key]
    return list(topology.subscriptions)


def _live(subscriber: SubscriberClient, project: str, name: str) -> dict[str, Any]:
    path = subscriber.subscription_path(project, name)
    return subs.live_settings(subscriber.get_subscription(subscription=path))


@group.command(
    "show", help="Live settings of the file's subscriptions.", epilog=f"example: {EXAMPLES['show']}"
)
@target_options
@json_option
@endpoint_option
@name_argument
def subscriptions_show(
    target: Target, name: str | None, push_endpoint: str | None, as_json: bool
) -> int:
    specs = [target.topology.subscriptions[k] for k in _spec_keys(target, name)]
    with SubscriberClient() as subscriber:
        live = {spec.name: _live(subscriber, target.project_id, spec.name) for spec in specs}

    def render() -> None:
        for name, settings in live.items():
            out.print(settings_table(name, list(settings.items()), ("field", "live")))

    emit(as_json, live, render)
    return EXIT_OK


def _differences(
    target: Target, name: str | None, push_endpoint: str | None, subscriber: SubscriberClient
) -> dict[str, tuple[dict[str, Any], dict[str, Any], list[subs.Difference]]]:
    result = {}
    for key in _spec_keys(target, name):
        spec = target.topology.subscriptions[key]
        live = _live(subscriber, target.project_id, spec.name)
        desired = subs.desired_settings(spec, push_endpoint)
        result[spec.name] = (live, desired, subs.diff(live, desired))
    return result


def _warn(target: Target) -> None:
    for warning in subs.check_topology(target.topology):
        err.print(f"[yellow]warning:[/] {warning}")


@group.command(
    "diff",
    help="Live settings against the file, field by field (exit code 3 when they differ).",
    epilog=f"example: {EXAMPLES['diff']}",
)
@target_options
@json_option
@endpoint_option
@name_argument
def subscriptions_diff(
    target: Target, name: str | None, push_endpoint: str | None, as_json: bool
) -> int:
    _warn(target)
    with SubscriberClient() as subscriber:
        found = _differences(target, name, push_endpoint, subscriber)
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

    emit(as_json, data, render)
    return EXIT_DIFF if any(data.values()) else EXIT_OK


@group.command(
    "apply",
    help="Update only the fields that differ from the file (with an update mask), showing "
    "before and after.",
    epilog=f"example: {EXAMPLES['apply']}",
)
@target_options
@json_option
@endpoint_option
@name_argument
def subscriptions_apply(
    target: Target, name: str | None, push_endpoint: str | None, as_json: bool
) -> int:
    project = target.project_id
    _warn(target)
    changes: dict[str, Any] = {}
    with SubscriberClient() as subscriber:
        found = _differences(target, name, push_endpoint, subscriber)
        for sub_name, (live, desired, diffs) in found.items():
            if not diffs:
                changes[sub_name] = {"changed": []}
                continue
            fields = {d.field for d in diffs}
            request, mask = subs.update_request(
                project, sub_name, subs.merged(live, desired), fields
            )
            subscriber.update_subscription(subscription=request, update_mask=mask)
            after = _live(subscriber, project, sub_name)
            changes[sub_name] = {
                "changed": sorted(fields),
                "update_mask": list(mask.paths),
                "before": {f: live[f] for f in sorted(fields)},
                "after": {f: after[f] for f in sorted(fields)},
            }

    def render() -> None:
        for sub_name, change in changes.items():
            if not change["changed"]:
                out.print(f"{sub_name}: already matches the file")
                continue
            out.print(
                settings_table(
                    f"{sub_name} (update mask: {', '.join(change['update_mask'])})",
                    [(f, change["before"][f], change["after"][f]) for f in change["changed"]],
                    ("field", "before", "after"),
                )
            )

    emit(as_json, changes, render)
    return EXIT_OK


@group.command(
    "set",
    help="Emergency change of one live field; warns that the file now drifts.",
    epilog=f"example: {EXAMPLES['set']}",
)
@target_options
@json_option
@endpoint_option
@click.argument("name")
@click.argument("field")
@click.argument("value")
def subscriptions_set(
    target: Target, name: str, field: str, value: str, push_endpoint: str | None, as_json: bool
) -> int:
    parsed = subs.parse_value(field, value)  # an unknown field is a usage error, named here
    project = target.project_id
    [key] = _spec_keys(target, name)
    spec = target.topology.subscriptions[key]
    with SubscriberClient() as subscriber:
        live = _live(subscriber, project, spec.name)
        candidate = subs.merged(live, {field: parsed})
        subs.validate(spec, candidate)
        request, mask = subs.update_request(project, spec.name, candidate, {field})
        subscriber.update_subscription(subscription=request, update_mask=mask)
        after = _live(subscriber, project, spec.name)
    data = {
        "subscription": spec.name,
        "field": field,
        "before": live[field],
        "after": after[field],
    }
    file_value = subs.desired_settings(spec, push_endpoint).get(field)

    def render() -> None:
        out.print(
            settings_table(
                spec.name,
                [(field, live[field], after[field])],
                ("field", "before", "after"),
            )
        )

    emit(as_json, data, render)
    if file_value is not None and file_value != after[field]:
        err.print(
            f"[yellow]warning:[/] {spec.name} now drifts from {target.file}; "
            f"to keep this value, set subscriptions.{key}.{field} = "
            f"{json.dumps(after[field])} (it is {json.dumps(file_value)}), "
            "or run `hookpipe subscriptions apply` to go back"
        )
    return EXIT_OK
