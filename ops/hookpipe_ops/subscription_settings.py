"""Subscription settings: the file (desired) against Pub/Sub (live), field by field.

One table, :data:`FIELDS`, says of every setting hookpipe manages where the file keeps it, how a
live ``Subscription`` holds it, the update-mask path that carries it, and what a value typed on
the command line must look like. Reading live settings, the file's, diffing them, validating a
change, building an update and creating a subscription (:mod:`hookpipe_ops.topology`) all go
through it. Updates follow the Pub/Sub samples' ``update_subscription``: only the named fields
change, sent with an update mask, and the settings are shown before and after.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from google.cloud.pubsub_v1 import PublisherClient, SubscriberClient
from google.protobuf import duration_pb2, field_mask_pb2
from google.pubsub_v1 import Subscription
from hookpipe.errors import validation_summary
from hookpipe.text import is_ascii_digits
from pydantic import ValidationError

from hookpipe_ops.errors import TopologyError, UsageError

if TYPE_CHECKING:  # topology imports this module to create subscriptions
    from hookpipe_ops.topology import SubscriptionSpec, Topology


def _seconds(duration: Any) -> int:
    if hasattr(duration, "total_seconds"):
        return int(duration.total_seconds())
    return int(duration.seconds)


def _duration(seconds: int) -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=seconds)


def _has(message: Any, name: str) -> bool:
    return name in message


@dataclass(frozen=True)
class Field:
    """One managed setting."""

    name: str  # as the file nests it, dotted; the CLI's name for it
    mask: str  # the update-mask path that carries it (several fields may share one)
    kind: type  # int, bool or str: what a value typed on the command line must be
    read: Callable[[Subscription], Any]  # from a live subscription; None when unset
    write: Callable[[Subscription, Any, str], None]  # (subscription, value, project)

    @property
    def spec_path(self) -> tuple[str, ...]:
        return tuple(self.name.split("."))


def _retry(name: str) -> Callable[[Subscription], Any]:
    return lambda s: _seconds(getattr(s.retry_policy, name)) if _has(s, "retry_policy") else None


def _oidc(name: str) -> Callable[[Subscription], Any]:
    def read(s: Subscription) -> Any:
        push = s.push_config
        return getattr(push.oidc_token, name) if push and _has(push, "oidc_token") else None

    return read


def _write_oidc_account(s: Subscription, value: Any, project: str) -> None:
    s.push_config.oidc_token.service_account_email = value


def _write_oidc_audience(s: Subscription, value: Any, project: str) -> None:
    # An audience alone would make a token with no account: written after the account (FIELDS'
    # order), and only with one.
    if value and _has(s.push_config, "oidc_token"):
        s.push_config.oidc_token.audience = value


def _set_dead_letter_topic(s: Subscription, value: Any, project: str) -> None:
    s.dead_letter_policy.dead_letter_topic = PublisherClient.topic_path(project, value)


FIELDS: tuple[Field, ...] = (
    Field(
        "ack_deadline_seconds",
        "ack_deadline_seconds",
        int,
        lambda s: s.ack_deadline_seconds,
        lambda s, v, p: setattr(s, "ack_deadline_seconds", v),
    ),
    Field(
        "retry_policy.minimum_backoff_seconds",
        "retry_policy",
        int,
        _retry("minimum_backoff"),
        lambda s, v, p: setattr(s.retry_policy, "minimum_backoff", _duration(v)),
    ),
    Field(
        "retry_policy.maximum_backoff_seconds",
        "retry_policy",
        int,
        _retry("maximum_backoff"),
        lambda s, v, p: setattr(s.retry_policy, "maximum_backoff", _duration(v)),
    ),
    Field(
        "dead_letter_policy.topic",
        "dead_letter_policy",
        str,
        lambda s: (
            s.dead_letter_policy.dead_letter_topic.rsplit("/", 1)[-1]
            if _has(s, "dead_letter_policy")
            else None
        ),
        _set_dead_letter_topic,
    ),
    Field(
        "dead_letter_policy.max_delivery_attempts",
        "dead_letter_policy",
        int,
        lambda s: (
            s.dead_letter_policy.max_delivery_attempts if _has(s, "dead_letter_policy") else None
        ),
        lambda s, v, p: setattr(s.dead_letter_policy, "max_delivery_attempts", v),
    ),
    Field(
        "message_retention_seconds",
        "message_retention_duration",
        int,
        lambda s: _seconds(s.message_retention_duration),
        lambda s, v, p: setattr(s, "message_retention_duration", _duration(v)),
    ),
    Field(
        "enable_exactly_once_delivery",
        "enable_exactly_once_delivery",
        bool,
        lambda s: s.enable_exactly_once_delivery,
        lambda s, v, p: setattr(s, "enable_exactly_once_delivery", v),
    ),
    Field(
        "push_endpoint",
        "push_config",
        str,
        lambda s: s.push_config.push_endpoint or None,
        lambda s, v, p: setattr(s.push_config, "push_endpoint", v or ""),
    ),
    Field(
        "push_oidc_service_account",
        "push_config",
        str,
        _oidc("service_account_email"),
        _write_oidc_account,
    ),
    Field("push_oidc_audience", "push_config", str, _oidc("audience"), _write_oidc_audience),
)
BY_NAME: dict[str, Field] = {f.name: f for f in FIELDS}


def field_named(name: str) -> Field:
    try:
        return BY_NAME[name]
    except KeyError:
        raise UsageError(f"unknown field {name!r}; one of: {', '.join(BY_NAME)}") from None


def live_settings(subscription: Subscription) -> dict[str, Any]:
    """The settings hookpipe manages, read from a live subscription."""
    return {f.name: f.read(subscription) for f in FIELDS}


def push_endpoint(spec: SubscriptionSpec, push_base_url: str | None) -> str | None:
    """The file's endpoint, or its path under the worker's URL; None when neither says."""
    if spec.push_endpoint is None and spec.push_path is not None and push_base_url:
        return push_base_url.rstrip("/") + spec.push_path
    return spec.push_endpoint


def desired_settings(spec: SubscriptionSpec, push_base_url: str | None) -> dict[str, Any]:
    """What the file says. ``None`` means the file leaves the field alone."""
    settings: dict[str, Any] = {}
    for f in FIELDS:
        value: Any = spec
        for part in f.spec_path:
            value = getattr(value, part) if value is not None else None
        settings[f.name] = value
    settings["push_endpoint"] = push_endpoint(spec, push_base_url)
    return settings


@dataclass(frozen=True)
class Difference:
    field: str
    live: Any
    desired: Any


def diff(live: Mapping[str, Any], desired: Mapping[str, Any]) -> list[Difference]:
    return [
        Difference(name, live.get(name), value)
        for name, value in desired.items()
        if value is not None and live.get(name) != value
    ]


def write(subscription: Subscription, settings: Mapping[str, Any], project_id: str) -> None:
    """Set on ``subscription`` every field ``settings`` gives a value (None: left unset)."""
    for f in FIELDS:
        if settings.get(f.name) is not None:
            f.write(subscription, settings[f.name], project_id)


def update_request(
    project_id: str, name: str, settings: Mapping[str, Any], fields: set[str]
) -> tuple[Subscription, field_mask_pb2.FieldMask]:
    """A Subscription carrying ``settings`` for the mask paths of ``fields`` only (a path such as
    retry_policy replaces all its fields: ``settings`` holds the others' values too), and the
    mask naming them."""
    paths = sorted({field_named(f).mask for f in fields})
    subscription = Subscription(name=SubscriberClient.subscription_path(project_id, name))
    write(
        subscription, {f.name: settings.get(f.name) for f in FIELDS if f.mask in paths}, project_id
    )
    return subscription, field_mask_pb2.FieldMask(paths=paths)


def merged(live: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
    """Live settings with the desired values laid over them (a mask path such as retry_policy
    carries several fields; those the file does not name keep their live value)."""
    return {k: (desired[k] if desired.get(k) is not None else live.get(k)) for k in live}


def check_topology(topology: Topology) -> list[str]:
    """Warnings about settings that are valid but risky."""
    warnings = []
    timeout = topology.worker_request_timeout_seconds
    for key, spec in topology.subscriptions.items():
        if spec.push_path is not None and spec.ack_deadline_seconds < timeout:
            warnings.append(
                f"{key}: ack_deadline_seconds ({spec.ack_deadline_seconds}) is shorter than the "
                f"worker's request timeout ({timeout} s): Pub/Sub redelivers pushes the worker "
                "may still commit, causing duplicate deliveries"
            )
    return warnings


def parse_value(name: str, value: str) -> Any:
    """A value given on the command line for field ``name``, as the live settings hold it."""
    kind = field_named(name).kind
    if kind is str:
        return value
    if kind is bool:
        if value.lower() not in ("true", "false"):
            raise UsageError(f"{name}: expected true or false, got {value!r}")
        return value.lower() == "true"
    if not is_ascii_digits(value):
        raise UsageError(f"{name}: expected a whole number of seconds or attempts, got {value!r}")
    return int(value)


def validate(spec: SubscriptionSpec, settings: Mapping[str, Any]) -> None:
    """Validate a live change with the same rules as the file, naming the field and range."""
    raw = spec.model_dump(by_alias=True)
    for f in FIELDS:
        value = settings.get(f.name)
        if value is None or f.name == "push_endpoint":  # the file's endpoint is a base URL's
            continue
        *parents, leaf = f.spec_path
        at = raw
        for part in parents:
            if not isinstance(at.get(part), dict):  # the file has no such policy yet
                at[part] = {}
            at = at[part]
        at[leaf] = value
    try:
        type(spec).model_validate(raw)
    except ValidationError as exc:
        raise TopologyError(validation_summary(exc)) from None
