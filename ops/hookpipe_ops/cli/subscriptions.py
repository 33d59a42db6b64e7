"""Subscription settings: the file (desired) against Pub/Sub (live), field by field.

Follows the Pub/Sub samples' ``update_subscription``: only the named fields change, sent with an
update mask, and the settings are shown before and after.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from google.cloud.pubsub_v1 import SubscriberClient
from google.protobuf import duration_pb2, field_mask_pb2
from google.pubsub_v1 import Subscription
from hookpipe.text import is_ascii_digits
from pydantic import ValidationError

from hookpipe_ops.errors import TopologyError, UsageError
from hookpipe_ops.topology import SubscriptionSpec, Topology

# CLI field name -> (update-mask path, how to read it from a live Subscription)
FIELDS: dict[str, str] = {
    "ack_deadline_seconds": "ack_deadline_seconds",
    "retry_policy.minimum_backoff_seconds": "retry_policy",
    "retry_policy.maximum_backoff_seconds": "retry_policy",
    "dead_letter_policy.topic": "dead_letter_policy",
    "dead_letter_policy.max_delivery_attempts": "dead_letter_policy",
    "message_retention_seconds": "message_retention_duration",
    "enable_exactly_once_delivery": "enable_exactly_once_delivery",
    "push_endpoint": "push_config",
    "push_oidc_service_account": "push_config",
    "push_oidc_audience": "push_config",
}


def _seconds(duration: Any) -> int | None:
    if duration is None:
        return None
    if hasattr(duration, "total_seconds"):
        return int(duration.total_seconds())
    return int(duration.seconds)


def live_settings(subscription: Subscription) -> dict[str, Any]:
    """The settings hookpipe manages, read from a live subscription."""
    retry = subscription.retry_policy if "retry_policy" in subscription else None
    dead = subscription.dead_letter_policy if "dead_letter_policy" in subscription else None
    push = subscription.push_config
    oidc = push.oidc_token if push and "oidc_token" in push else None
    return {
        "ack_deadline_seconds": subscription.ack_deadline_seconds,
        "retry_policy.minimum_backoff_seconds": _seconds(retry.minimum_backoff) if retry else None,
        "retry_policy.maximum_backoff_seconds": _seconds(retry.maximum_backoff) if retry else None,
        "dead_letter_policy.topic": dead.dead_letter_topic.rsplit("/", 1)[-1] if dead else None,
        "dead_letter_policy.max_delivery_attempts": dead.max_delivery_attempts if dead else None,
        "message_retention_seconds": _seconds(subscription.message_retention_duration),
        "enable_exactly_once_delivery": subscription.enable_exactly_once_delivery,
        "push_endpoint": push.push_endpoint or None,
        "push_oidc_service_account": oidc.service_account_email if oidc else None,
        "push_oidc_audience": oidc.audience if oidc else None,
    }


def desired_settings(spec: SubscriptionSpec, push_base_url: str | None) -> dict[str, Any]:
    """What the file says. ``None`` means the file leaves the field alone."""
    endpoint = spec.push_endpoint
    if endpoint is None and spec.push_path is not None and push_base_url:
        endpoint = push_base_url.rstrip("/") + spec.push_path
    retry, dead_letter = spec.retry_policy, spec.dead_letter_policy
    return {
        "ack_deadline_seconds": spec.ack_deadline_seconds,
        "retry_policy.minimum_backoff_seconds": retry and retry.minimum_backoff_seconds,
        "retry_policy.maximum_backoff_seconds": retry and retry.maximum_backoff_seconds,
        "dead_letter_policy.topic": dead_letter and dead_letter.topic,
        "dead_letter_policy.max_delivery_attempts": dead_letter
        and dead_letter.max_delivery_attempts,
        "message_retention_seconds": spec.message_retention_seconds,
        "enable_exactly_once_delivery": spec.enable_exactly_once_delivery,
        "push_endpoint": endpoint,
        "push_oidc_service_account": spec.push_oidc_service_account,
        "push_oidc_audience": spec.push_oidc_audience,
    }


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


def update_request(
    project_id: str, name: str, settings: Mapping[str, Any], fields: set[str]
) -> tuple[Subscription, field_mask_pb2.FieldMask]:
    """A Subscription carrying ``settings`` for ``fields`` only, and the mask naming them."""
    paths = sorted({FIELDS[f] for f in fields})
    subscription = Subscription(name=SubscriberClient.subscription_path(project_id, name))
    s = settings
    if "ack_deadline_seconds" in paths:
        subscription.ack_deadline_seconds = s["ack_deadline_seconds"]
    if "retry_policy" in paths:
        subscription.retry_policy.minimum_backoff = duration_pb2.Duration(
            seconds=s["retry_policy.minimum_backoff_seconds"]
        )
        subscription.retry_policy.maximum_backoff = duration_pb2.Duration(
            seconds=s["retry_policy.maximum_backoff_seconds"]
        )
    if "dead_letter_policy" in paths:
        subscription.dead_letter_policy.dead_letter_topic = (
            f"projects/{project_id}/topics/{s['dead_letter_policy.topic']}"
        )
        subscription.dead_letter_policy.max_delivery_attempts = s[
            "dead_letter_policy.max_delivery_attempts"
        ]
    if "message_retention_duration" in paths:
        subscription.message_retention_duration = duration_pb2.Duration(
            seconds=s["message_retention_seconds"]
        )
    if "enable_exactly_once_delivery" in paths:
        subscription.enable_exactly_once_delivery = s["enable_exactly_once_delivery"]
    if "push_config" in paths:
        subscription.push_config.push_endpoint = s["push_endpoint"] or ""
        if s.get("push_oidc_service_account"):
            subscription.push_config.oidc_token.service_account_email = s[
                "push_oidc_service_account"
            ]
            subscription.push_config.oidc_token.audience = s.get("push_oidc_audience") or ""
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


def parse_value(field: str, value: str) -> Any:
    """A value given on the command line for ``field``, as the live settings hold it."""
    if field in (
        "push_endpoint",
        "push_oidc_service_account",
        "push_oidc_audience",
        "dead_letter_policy.topic",
    ):
        return value
    if field == "enable_exactly_once_delivery":
        if value.lower() not in ("true", "false"):
            raise UsageError(f"{field}: expected true or false, got {value!r}")
        return value.lower() == "true"
    # isdigit() alone takes '²', which int() refuses.
    if not is_ascii_digits(value):
        raise UsageError(f"{field}: expected a whole number of seconds or attempts, got {value!r}")
    return int(value)


def validate(spec: SubscriptionSpec, settings: Mapping[str, Any]) -> None:
    """Validate a live change with the same rules as the file, naming the field and range."""
    raw = spec.model_dump(by_alias=True)
    raw["ack_deadline_seconds"] = settings["ack_deadline_seconds"]
    raw["message_retention_seconds"] = settings["message_retention_seconds"]
    if settings.get("retry_policy.minimum_backoff_seconds") is not None:
        raw["retry_policy"] = {
            "minimum_backoff_seconds": settings["retry_policy.minimum_backoff_seconds"],
            "maximum_backoff_seconds": settings["retry_policy.maximum_backoff_seconds"],
        }
    if settings.get("dead_letter_policy.topic") is not None:
        raw["dead_letter_policy"] = {
            "topic": settings["dead_letter_policy.topic"],
            "max_delivery_attempts": settings["dead_letter_policy.max_delivery_attempts"],
        }
    try:
        type(spec).model_validate(raw)
    except ValidationError as exc:
        raise TopologyError(
            "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        ) from None
