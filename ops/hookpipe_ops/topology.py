"""hookpipe's Pub/Sub topology, read from ``infra/pubsub/subscriptions.json``, and its creation.

The file is the single source of truth for topic names and subscription settings; Terraform, the
local stack and the ``hookpipe`` CLI all read it. Validation here gives one clear error per field,
with the allowed range, before anything is sent to Pub/Sub.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Self

from google.api_core.exceptions import AlreadyExists
from google.cloud.pubsub_v1 import PublisherClient, SubscriberClient
from google.pubsub_v1 import Subscription
from hookpipe.errors import validation_summary
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hookpipe_ops.errors import TopologyError
from hookpipe_ops.subscription_settings import desired_settings, write

DEFAULT_TOPOLOGY_FILE = Path("infra/pubsub/subscriptions.json")


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class RetryPolicy(_Spec):
    minimum_backoff_seconds: int = Field(ge=0, le=600)
    maximum_backoff_seconds: int = Field(ge=0, le=600)

    @model_validator(mode="after")
    def _min_not_above_max(self) -> Self:
        if self.minimum_backoff_seconds > self.maximum_backoff_seconds:
            raise ValueError(
                f"minimum_backoff_seconds ({self.minimum_backoff_seconds}) must be <= "
                f"maximum_backoff_seconds ({self.maximum_backoff_seconds})"
            )
        return self


class DeadLetterPolicy(_Spec):
    topic: str = Field(min_length=1)
    max_delivery_attempts: int = Field(ge=5, le=100)


class SubscriptionSpec(_Spec):
    name: str = Field(min_length=1)
    topic: str = Field(min_length=1)
    push_path: str | None = Field(default=None, pattern=r"^/")
    ack_deadline_seconds: int = Field(default=60, ge=10, le=600)
    retry_policy: RetryPolicy | None = None
    dead_letter_policy: DeadLetterPolicy | None = None
    # Pub/Sub allows 10 minutes to 7 days on a subscription (31 days only on a topic).
    message_retention_seconds: int = Field(default=604800, ge=600, le=604800)
    enable_exactly_once_delivery: bool = False
    # Environment-specific; usually set by a profile, Terraform or --push-endpoint.
    push_endpoint: str | None = Field(default=None, pattern=r"^https?://")
    push_oidc_service_account: str | None = None
    push_oidc_audience: str | None = None


class Topology(_Spec):
    comment: str | None = Field(default=None, alias="$comment")
    events_topic: str = Field(min_length=1)
    dead_letter_topic: str = Field(min_length=1)
    # The worker's request timeout (Cloud Run's, set by Terraform from here): a push
    # subscription's ack deadline shorter than it causes duplicate deliveries.
    worker_request_timeout_seconds: int = Field(default=60, ge=1, le=3600)
    subscriptions: dict[str, SubscriptionSpec]
    profiles: dict[str, dict[str, Any]] = Field(default_factory=dict)

    def subscription(self, key: str) -> SubscriptionSpec:
        try:
            return self.subscriptions[key]
        except KeyError:
            known = ", ".join(sorted(self.subscriptions))
            raise TopologyError(f"no subscription {key!r} in the file (known: {known})") from None


def load_topology(path: Path, profile: str | None = None) -> Topology:
    """Read and validate the settings file, with a profile's overrides merged in. (The CLI's
    ``--file`` defaults to ``$HOOKPIPE_TOPOLOGY_FILE``, else :data:`DEFAULT_TOPOLOGY_FILE`.)"""
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise TopologyError(
            f"{path} not found: run from the repository root or set HOOKPIPE_TOPOLOGY_FILE"
        ) from None
    except json.JSONDecodeError as exc:
        raise TopologyError(f"{path}: not JSON: {exc}") from None
    if profile is not None:
        overrides = raw.get("profiles", {}).get(profile)
        if overrides is None:
            raise TopologyError(f"{path}: no profile {profile!r}")
        for key, patch in overrides.items():
            if key.startswith("$"):
                continue
            raw["subscriptions"][key] = _merge(raw["subscriptions"].get(key, {}), patch)
    return parse_topology(raw, source=str(path))


def parse_topology(raw: dict[str, Any], source: str = "settings") -> Topology:
    try:
        return Topology.model_validate(raw)
    except ValidationError as exc:
        raise TopologyError(f"{source}: {validation_summary(exc)}") from None


def _merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def subscription_request(
    project_id: str, spec: SubscriptionSpec, push_base_url: str | None
) -> Subscription:
    """The ``Subscription`` to create for ``spec``: every field the file sets, written through
    the one field table (:data:`hookpipe_ops.subscription_settings.FIELDS`)."""
    settings = desired_settings(spec, push_base_url)
    if spec.push_path is not None and settings["push_endpoint"] is None:
        raise TopologyError(f"{spec.name} is a push subscription: give the worker's URL")
    if settings["push_oidc_service_account"] and not settings["push_oidc_audience"]:
        settings["push_oidc_audience"] = settings["push_endpoint"]
    subscription = Subscription(
        name=SubscriberClient.subscription_path(project_id, spec.name),
        topic=PublisherClient.topic_path(project_id, spec.topic),
    )
    write(subscription, settings, project_id)
    return subscription


def ensure_topology(
    project_id: str,
    topology: Topology,
    *,
    push_base_url: str | None,
    publisher: PublisherClient,
    subscriber: SubscriberClient,
) -> list[str]:
    """Create every topic and subscription that does not exist yet; return what was created.

    Existing resources are left as they are (``hookpipe subscriptions apply`` updates them).
    """
    created: list[str] = []
    topics = {topology.events_topic, topology.dead_letter_topic}
    topics |= {spec.topic for spec in topology.subscriptions.values()}
    for topic in sorted(topics):
        try:
            publisher.create_topic(name=publisher.topic_path(project_id, topic))
            created.append(f"topic {topic}")
        except AlreadyExists:
            pass
    for spec in topology.subscriptions.values():
        try:
            subscriber.create_subscription(
                request=subscription_request(project_id, spec, push_base_url)
            )
            created.append(f"subscription {spec.name}")
        except AlreadyExists:
            pass
    return created
