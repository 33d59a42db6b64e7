"""The pure half of ``hookpipe subscriptions``: the file's settings against live ones, the update
request and its mask, and what ``set`` accepts. (tests/e2e/test_cli.py runs the commands against
the Pub/Sub emulator.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from google.pubsub_v1 import Subscription
from hookpipe_ops import subscription_settings as subs
from hookpipe_ops.errors import TopologyError, UsageError
from hookpipe_ops.topology import load_topology, subscription_request

TOPOLOGY = load_topology(Path(__file__).resolve().parents[2] / "infra/pubsub/subscriptions.json")
PUSH = TOPOLOGY.subscription("worker-push")


def live_of(**changes: Any) -> dict[str, Any]:
    """Live settings that match the file for the worker's push subscription, but for ``changes``."""
    desired = subs.desired_settings(PUSH, "https://worker.example")
    return {**{f.name: desired.get(f.name) for f in subs.FIELDS}, **changes}


def test_the_push_endpoint_is_the_workers_url_and_the_files_path() -> None:
    desired = subs.desired_settings(PUSH, "https://worker.example/")
    assert desired["push_endpoint"] == "https://worker.example/pubsub/push"
    assert subs.desired_settings(PUSH, None)["push_endpoint"] is None  # left alone


def test_diff_names_only_the_fields_the_file_sets_and_live_differs_on() -> None:
    desired = subs.desired_settings(PUSH, None)  # the endpoint is not the file's to say
    live = live_of(ack_deadline_seconds=10, push_endpoint="https://elsewhere")
    assert subs.diff(live, desired) == [
        subs.Difference("ack_deadline_seconds", 10, PUSH.ack_deadline_seconds)
    ]
    assert subs.diff(live_of(), desired) == []


def test_the_update_carries_only_the_changed_fields_and_keeps_a_paths_other_fields() -> None:
    live = live_of(**{"retry_policy.maximum_backoff_seconds": 60, "ack_deadline_seconds": 10})
    settings = subs.merged(live, {"retry_policy.minimum_backoff_seconds": 5})
    request, mask = subs.update_request(
        "p", "hookpipe-worker-push", settings, {"retry_policy.minimum_backoff_seconds"}
    )
    assert list(mask.paths) == ["retry_policy"]
    assert request.name == "projects/p/subscriptions/hookpipe-worker-push"
    assert request.retry_policy.minimum_backoff.total_seconds() == 5
    assert request.retry_policy.maximum_backoff.total_seconds() == 60  # live, not reset
    assert request.ack_deadline_seconds == 0  # not in the mask, not sent


@pytest.mark.parametrize(
    ("field", "text", "value"),
    [
        ("ack_deadline_seconds", "120", 120),
        ("enable_exactly_once_delivery", "TRUE", True),
        (
            "push_endpoint",
            "https://worker.example/pubsub/push",
            "https://worker.example/pubsub/push",
        ),
    ],
)
def test_set_parses_a_value_as_the_live_settings_hold_it(field: str, text: str, value: Any) -> None:
    assert subs.parse_value(field, text) == value


@pytest.mark.parametrize(
    ("field", "text"),
    [
        ("ack_deadline_seconds", "-1"),
        ("ack_deadline_seconds", "²"),
        ("enable_exactly_once_delivery", "yes"),
    ],
)
def test_set_refuses_a_value_that_is_not_of_the_fields_kind(field: str, text: str) -> None:
    with pytest.raises(UsageError, match=field):
        subs.parse_value(field, text)


def test_set_validates_with_the_files_rules_and_names_the_field() -> None:
    subs.validate(PUSH, live_of(ack_deadline_seconds=120))
    with pytest.raises(TopologyError, match="ack_deadline_seconds"):
        subs.validate(PUSH, live_of(ack_deadline_seconds=601))


def test_a_created_subscription_carries_every_field_the_file_sets() -> None:
    created = subscription_request("p", PUSH, "https://worker.example")
    assert created.topic == f"projects/p/topics/{PUSH.topic}"
    # What was written through the field table reads back through it as the file says.
    live = subs.live_settings(created)
    assert subs.diff(live, subs.desired_settings(PUSH, "https://worker.example")) == []


def test_every_managed_field_round_trips_through_the_table() -> None:
    values = {"ack_deadline_seconds": 77, "retry_policy.minimum_backoff_seconds": 3,
              "retry_policy.maximum_backoff_seconds": 9, "dead_letter_policy.topic": "dl",
              "dead_letter_policy.max_delivery_attempts": 7, "message_retention_seconds": 900,
              "enable_exactly_once_delivery": True, "push_endpoint": "https://w.example/x",
              "push_oidc_service_account": "sa@p.iam", "push_oidc_audience": "aud"}  # fmt: skip
    assert set(values) == set(subs.BY_NAME)
    subscription = Subscription()
    subs.write(subscription, values, "p")
    assert subs.live_settings(subscription) == values
    assert subscription.dead_letter_policy.dead_letter_topic == "projects/p/topics/dl"
