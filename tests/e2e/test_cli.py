"""The `hookpipe` operator CLI against the real emulator and sinks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from google.cloud.pubsub_v1 import PublisherClient
from hookpipe.deadletters import timestamp
from hookpipe.event import to_message

from tests.events import webhook_event
from tests.support import StackHandle, lead, postgres_refuses, wait_for

pytestmark = pytest.mark.stack
REPO = Path(__file__).resolve().parents[2]
HOOKPIPE = str(Path(sys.executable).parent / "hookpipe")


def cli(
    stack: StackHandle, *argv: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The operator CLI in a process of its own against the stack (``env``: more variables)."""
    env = {
        **os.environ,
        "PUBSUB_EMULATOR_HOST": stack.stack.pubsub.host,
        "HOOKPIPE_PROJECT_ID": stack.project_id,
        "COLUMNS": "200",
        **(env or {}),
    }
    return subprocess.run(
        [HOOKPIPE, *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
        check=False,
    )


def cli_json(stack: StackHandle, *argv: str) -> Any:
    result = cli(stack, *argv, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def ids_filter(event_ids: list[str]) -> list[str]:
    return [arg for i in event_ids for arg in ("--attr", f"ce-id={i}")]


@pytest.fixture
def dead_lettered(stack: StackHandle) -> Iterator[list[str]]:
    """Eight LeadProsper events in the dead-letter topic exactly as the worker leaves a row
    Postgres refused (original CloudEvent plus its reason), whose cause has since been fixed.

    They are published there directly: making the worker fail eight messages at once would
    stall the emulator's push loop for the rest of the session (docs/delivery.md, "Emulator
    quirks"); the worker's own dead-lettering is tested in test_pipeline and the fault suite.
    """
    publisher = PublisherClient()
    topic = publisher.topic_path(stack.project_id, "hookpipe-dead-letter")
    ids = []
    for n in range(8):
        event = webhook_event(lead())
        data, attributes = to_message(event)
        attributes |= {
            "hookpipe-error-class": "RowRejected",
            "hookpipe-error-message": "postgres rejected the row: check constraint (since fixed)",
            "hookpipe-worker-revision": "hookpipe-worker-00042",
            "hookpipe-first-failure-time": datetime.now(UTC).isoformat(),
            "hookpipe-original-message-id": f"original-{n}",
        }
        publisher.publish(topic, data, **attributes).result()
        ids.append(event.id)
    publisher.stop()
    yield ids
    cli(stack, "dlq", "replay", *ids_filter(ids))  # leave nothing of ours behind


def test_stats_and_peek_show_reasons_without_consuming(
    stack: StackHandle, dead_lettered: list[str]
) -> None:
    stats = cli_json(stack, "dlq", "stats", *ids_filter(dead_lettered))
    assert stats["by_reason"] == {"RowRejected": 8}
    assert stats["by_source"] == {"leadprosper": 8}
    assert stats["oldest_age_seconds"] >= 0
    peeked = cli_json(stack, "dlq", "peek", "--limit", "3", *ids_filter(dead_lettered))
    assert len(peeked) == 3
    assert all(p["reason"] == "RowRejected" and "lp_request_uuid" in p["payload"] for p in peeked)
    human = cli(stack, "dlq", "peek", *ids_filter(dead_lettered))
    assert human.returncode == 0
    assert "RowRejected" in human.stdout
    # Peeking released them: still all there.
    assert cli_json(stack, "dlq", "stats", *ids_filter(dead_lettered))["total"] == 8


def test_dry_run_changes_nothing_and_filters_select_exactly(
    stack: StackHandle, dead_lettered: list[str]
) -> None:
    dry = cli_json(stack, "dlq", "replay", "--dry-run", *ids_filter(dead_lettered))
    assert (dry["selected"], dry["replayed"]) == (8, 0)
    assert cli_json(stack, "dlq", "stats", *ids_filter(dead_lettered))["total"] == 8
    assert stack.pg_events(dead_lettered) == {}

    chosen, rest = dead_lettered[:3], dead_lettered[3:]
    replayed = cli_json(stack, "dlq", "replay", *ids_filter(chosen))
    assert replayed["replayed"] == 3
    assert sorted(m["event_id"] for m in replayed["messages"]) == sorted(chosen)
    stack.wait_committed(chosen)
    assert cli_json(stack, "dlq", "stats", *ids_filter(rest))["total"] == 5
    assert cli_json(stack, "dlq", "stats", *ids_filter(chosen))["total"] == 0
    assert stack.pg_events(rest) == {}
    # Nothing to show: one line that says so, no empty tables.
    nothing = cli(stack, "dlq", "stats", *ids_filter(chosen))
    assert nothing.returncode == 0, nothing.stderr
    assert nothing.stdout.splitlines()[0] == "no dead letters"
    assert "┏" not in nothing.stdout


def test_replay_after_the_fix_lands_exactly_once_in_both_sinks(
    stack: StackHandle, dead_lettered: list[str]
) -> None:
    result = cli(
        stack,
        "dlq",
        "replay",
        "--error-class",
        "RowRejected",
        "--source",
        "leadprosper",
        *ids_filter(dead_lettered),
    )
    assert result.returncode == 0, result.stderr
    audit = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    replay_lines = [a for a in audit if a.get("event") == "dlq.replay"]
    assert sorted(a["event_id"] for a in replay_lines) == sorted(dead_lettered)
    assert {a["replayed_from"] for a in replay_lines} == {"subscription"}
    stack.wait_committed(dead_lettered)
    assert len(stack.pg_events(dead_lettered)) == 8
    assert sorted(r["event_id"] for r in stack.bq_rows("events", dead_lettered)) == sorted(
        dead_lettered
    )


def test_replay_killed_mid_run_and_run_again_loses_and_duplicates_nothing(
    stack: StackHandle, dead_lettered: list[str]
) -> None:
    env = {
        **os.environ,
        "PUBSUB_EMULATOR_HOST": stack.stack.pubsub.host,
        "HOOKPIPE_PROJECT_ID": stack.project_id,
    }
    slow = subprocess.Popen(
        [HOOKPIPE, "dlq", "replay", "--rate", "2", *ids_filter(dead_lettered)],
        cwd=REPO,
        env=env,
        text=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    replayed = 0
    assert slow.stderr is not None
    for line in slow.stderr:
        replayed += "→ replayed as" in line
        if replayed == 3:
            slow.send_signal(signal.SIGKILL)
            break
    slow.wait(30)
    assert replayed == 3

    # Run again, as an operator would, until every event has landed: messages the killed run was
    # holding reappear once its 30 s hold lapses.
    def all_landed() -> bool:
        cli_json(stack, "dlq", "replay", *ids_filter(dead_lettered))
        return len(stack.pg_events(dead_lettered)) == 8

    wait_for(all_landed, 120, "the replays to land every event")
    assert len(stack.pg_events(dead_lettered)) == 8
    assert len(stack.bq_rows("events", dead_lettered)) == 8
    assert cli_json(stack, "dlq", "stats", *ids_filter(dead_lettered))["total"] == 0


def test_a_replayed_message_that_fails_again_keeps_its_history(stack: StackHandle) -> None:
    """Replayed before its cause was fixed: it comes back with a fresh reason, one replay more,
    and the same first message id and first failure time."""
    # 22023: Postgres refuses the row for its values (as a check constraint would), even after
    # marking; the worker dead-letters it, and so it stays while the trigger is in place.
    with postgres_refuses(stack, {"refused_by_postgres": "22023"}):
        response = stack.post(lead(refused_by_postgres="yes"))
        assert response.status_code == 202, response.text
        event_id = response.json()["event_id"]

        def dead_letter(replays: int) -> dict[str, str] | None:
            for letter in cli_json(stack, "dlq", "peek", *ids_filter([event_id])):
                attributes: dict[str, str] = letter["attributes"]
                if int(attributes.get("hookpipe-replay-count", "0")) == replays:
                    return attributes
            return None

        first = wait_for(lambda: dead_letter(0), 60, "the worker to dead-letter the event")
        assert first["hookpipe-error-class"] == "RowRejected"
        # The replay must not pick up its own replay when that fails again: once, not a loop.
        replayed = cli_json(stack, "dlq", "replay", *ids_filter([event_id]))
        assert replayed["replayed"] == 1
        again = wait_for(lambda: dead_letter(1), 60, "the replayed event to be dead-lettered again")
        letters = cli_json(stack, "dlq", "peek", *ids_filter([event_id]))
        assert [letter["attributes"]["hookpipe-replay-count"] for letter in letters] == ["1"]

    assert again["hookpipe-error-class"] == "RowRejected"
    assert again["hookpipe-first-failure-time"] == first["hookpipe-first-failure-time"]
    assert again["hookpipe-original-message-id"] == first["hookpipe-original-message-id"]
    assert "hookpipe-replayed-at" in again
    assert stack.pg_events([event_id]) == {}
    stack.take_dead_letters(
        lambda attributes, _: attributes.get("ce-id") == event_id, lambda found: len(found) == 1
    )


def test_replay_leaves_its_own_replays_that_failed_again_in_place(stack: StackHandle) -> None:
    """A dead letter stamped as replayed after the run began (its own replay, failed again) is
    neither replayed again nor consumed: it is counted as failed_again and stays for the operator.
    Published directly so the timing is exact: its replay stamp lies after the run's start."""
    event = webhook_event(lead())
    data, attributes = to_message(event)
    attributes |= {
        "hookpipe-error-class": "MappingError",
        "hookpipe-error-message": "lp_timestamp: 'yesterday' is not a valid timestamp",
        "hookpipe-replay-count": "1",
        "hookpipe-replayed-at": timestamp(datetime.now(UTC) + timedelta(hours=1)),
    }
    publisher = PublisherClient()
    publisher.publish(
        publisher.topic_path(stack.project_id, "hookpipe-dead-letter"), data, **attributes
    ).result()
    publisher.stop()

    summary = cli_json(stack, "dlq", "replay", *ids_filter([event.id]))
    assert (summary["failed_again"], summary["selected"], summary["replayed"]) == (1, 0, 0)
    human = cli(stack, "dlq", "replay", *ids_filter([event.id]))
    assert human.returncode == 0, human.stderr
    assert "1 replayed message(s) were dead-lettered again during this run" in human.stdout
    assert cli_json(stack, "dlq", "stats", *ids_filter([event.id]))["total"] == 1
    assert stack.pg_events([event.id]) == {}
    stack.take_dead_letters(
        lambda attributes, _: attributes.get("ce-id") == event.id, lambda found: len(found) == 1
    )


def test_replay_refuses_to_run_unfiltered_without_all(stack: StackHandle) -> None:
    result = cli(stack, "dlq", "replay")
    assert result.returncode == 2
    assert "--all" in result.stderr


def _settings(tmp_path: Path, **worker_push: Any) -> Path:
    raw = json.loads((REPO / "infra/pubsub/subscriptions.json").read_text())
    raw["subscriptions"]["worker-push"].update(worker_push)
    path = tmp_path / "subscriptions.json"
    path.write_text(json.dumps(raw))
    return path


def test_apply_makes_live_match_the_file_and_diff_is_empty_after(
    stack: StackHandle, tmp_path: Path
) -> None:
    flags = ["--profile", "local", "--push-endpoint", stack.stack.worker.url]
    assert cli(stack, "subscriptions", "diff", *flags).returncode == 0
    changed = _settings(
        tmp_path,
        ack_deadline_seconds=75,
        dead_letter_policy={"topic": "hookpipe-dead-letter", "max_delivery_attempts": 7},
    )
    try:
        diff = cli_json_code(stack, 3, "subscriptions", "diff", "--file", str(changed), *flags)
        fields = {d["field"] for d in diff["hookpipe-worker-push"]}
        assert fields == {"ack_deadline_seconds", "dead_letter_policy.max_delivery_attempts"}
        applied = cli_json(stack, "subscriptions", "apply", "--file", str(changed), *flags)
        change = applied["hookpipe-worker-push"]
        assert change["before"]["ack_deadline_seconds"] == 60
        assert change["after"]["ack_deadline_seconds"] == 75
        assert sorted(change["update_mask"]) == ["ack_deadline_seconds", "dead_letter_policy"]
        assert applied["hookpipe-dead-letter-pull"] == {"changed": []}
        assert cli(stack, "subscriptions", "diff", "--file", str(changed), *flags).returncode == 0
        live = cli_json(stack, "subscriptions", "show", "hookpipe-worker-push")
        assert live["hookpipe-worker-push"]["push_endpoint"].startswith(stack.stack.worker.url)
    finally:
        assert cli(stack, "subscriptions", "apply", *flags).returncode == 0
    assert cli(stack, "subscriptions", "diff", *flags).returncode == 0


def cli_json_code(stack: StackHandle, code: int, *argv: str) -> Any:
    result = cli(stack, *argv, "--json")
    assert result.returncode == code, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"dead_letter_policy": {"topic": "hookpipe-dead-letter", "max_delivery_attempts": 3}},
            "max_delivery_attempts: Input should be greater than or equal to 5",
        ),
        (
            {"retry_policy": {"minimum_backoff_seconds": 60, "maximum_backoff_seconds": 10}},
            "minimum_backoff_seconds (60) must be <= maximum_backoff_seconds (10)",
        ),
        (
            {"ack_deadline_seconds": 700},
            "ack_deadline_seconds: Input should be less than or equal to 600",
        ),
        ({"message_retention_seconds": 60}, "message_retention_seconds: Input should be greater"),
    ],
)
def test_invalid_settings_are_refused_before_anything_is_sent(
    stack: StackHandle, tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    result = cli(stack, "subscriptions", "apply", "--file", str(_settings(tmp_path, **change)))
    assert result.returncode == 2
    assert message in " ".join(result.stderr.split())


def test_set_changes_one_field_warns_of_drift_and_validates(stack: StackHandle) -> None:
    refused = cli(
        stack, "subscriptions", "set", "hookpipe-worker-push", "ack_deadline_seconds", "5"
    )
    assert refused.returncode == 2
    assert "greater than or equal to 10" in " ".join(refused.stderr.split())
    changed = cli(
        stack,
        "subscriptions",
        "set",
        "hookpipe-worker-push",
        "ack_deadline_seconds",
        "90",
        "--json",
    )
    try:
        assert changed.returncode == 0, changed.stderr
        assert json.loads(changed.stdout) == {
            "subscription": "hookpipe-worker-push",
            "field": "ack_deadline_seconds",
            "before": 60,
            "after": 90,
        }
        assert "drifts" in changed.stderr
        assert "subscriptions.worker-push.ack_deadline_seconds = 90" in " ".join(
            changed.stderr.split()
        )
    finally:
        cli(stack, "subscriptions", "set", "hookpipe-worker-push", "ack_deadline_seconds", "60")


def test_short_ack_deadline_warns_of_duplicates(stack: StackHandle, tmp_path: Path) -> None:
    path = _settings(tmp_path, ack_deadline_seconds=30)
    result = cli(stack, "subscriptions", "diff", "--file", str(path), "--profile", "local")
    assert "shorter than the worker's request timeout" in " ".join(result.stderr.split())


def test_replay_that_cannot_republish_keeps_the_messages_and_says_so(
    stack: StackHandle, dead_lettered: list[str]
) -> None:
    result = cli(
        stack, "dlq", "replay", "--topic", "no-such-topic", "--json", *ids_filter(dead_lettered[:2])
    )
    assert result.returncode == 4, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["selected"], summary["replayed"], summary["failed"]) == (2, 0, 2)
    assert cli_json(stack, "dlq", "stats", *ids_filter(dead_lettered))["total"] == 8
