"""Terraform checks that run offline (the google provider cannot be downloaded here, so no
`terraform validate`): formatting, agreement with the settings files, least privilege.
checkov runs from `make infra-check`."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import hcl2
import pytest

REPO = Path(__file__).resolve().parents[2]
TF = REPO / "infra/terraform"
TOPOLOGY = json.loads((REPO / "infra/pubsub/subscriptions.json").read_text())
TABLES = json.loads((REPO / "infra/bigquery/tables.json").read_text())
SOURCES = {p.name: p.read_text() for p in TF.glob("*.tf")}


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {k.strip('"'): _clean(v) for k, v in value.items() if k != "__is_block__"}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, str):
        return value.strip('"')
    return value


def resources(kind: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for path in TF.glob("*.tf"):
        for block in _clean(hcl2.load(path.open())).get("resource", []):
            found.update(block.get(kind, {}))
    return found


def test_terraform_is_formatted() -> None:
    terraform = shutil.which("terraform")
    if terraform is None:
        pytest.skip(
            "terraform is not installed (https://developer.hashicorp.com/terraform/install)"
        )
    result = subprocess.run(
        [terraform, "fmt", "-check", "-recursive", str(TF)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"terraform fmt would change: {result.stdout}"


def test_terraform_reads_the_same_settings_files() -> None:
    locals_tf = SOURCES["locals.tf"]
    assert 'jsondecode(file("${path.module}/../pubsub/subscriptions.json"))' in locals_tf
    assert 'jsondecode(file("${path.module}/../bigquery/tables.json"))' in locals_tf
    assert "local.bq_tables.raw_table.schema_file" in locals_tf


ROOTS = {
    "local.topology": TOPOLOGY,
    "local.push_sub": TOPOLOGY["subscriptions"]["worker-push"],
    "local.dlq_sub": TOPOLOGY["subscriptions"]["dead-letter-pull"],
    "local.bq_tables": TABLES,
}


def test_every_reference_to_a_settings_file_resolves() -> None:
    """A field renamed or removed in the JSON files breaks this test, not a deploy."""
    pattern = re.compile(r"(local\.(?:topology|push_sub|dlq_sub|bq_tables))((?:\.[a-z_]+)+)")
    seen = 0
    for name, text in SOURCES.items():
        for root, path in pattern.findall(text):
            node: Any = ROOTS[root]
            for part in path.strip(".").split("."):
                assert isinstance(node, dict), f"{name}: {root}{path}"
                assert part in node, f"{name}: {root}{path}"
                node = node[part]
            seen += 1
    assert seen >= 15


def test_pubsub_resources_take_their_settings_from_the_file() -> None:
    subscriptions = resources("google_pubsub_subscription")
    push = subscriptions["worker_push"]
    assert push["name"] == "${local.push_sub.name}"
    assert push["ack_deadline_seconds"] == "${local.push_sub.ack_deadline_seconds}"
    assert push["retry_policy"][0]["minimum_backoff"] == (
        "${local.push_sub.retry_policy.minimum_backoff_seconds}s"
    )
    assert push["dead_letter_policy"][0]["max_delivery_attempts"] == (
        "${local.push_sub.dead_letter_policy.max_delivery_attempts}"
    )
    assert push["push_config"][0]["oidc_token"][0]["service_account_email"] == (
        "${google_service_account.push.email}"
    )
    dlq = subscriptions["dead_letter_pull"]
    assert dlq["enable_exactly_once_delivery"] == "${local.dlq_sub.enable_exactly_once_delivery}"
    topics = resources("google_pubsub_topic")
    assert topics["events"]["name"] == "${local.topology.events_topic}"
    assert topics["dead_letter"]["name"] == "${local.topology.dead_letter_topic}"


def test_pubsub_service_agent_can_dead_letter() -> None:
    topic_grants = resources("google_pubsub_topic_iam_member")
    sub_grants = resources("google_pubsub_subscription_iam_member")
    assert topic_grants["agent_publishes_dead_letters"]["role"] == "roles/pubsub.publisher"
    assert topic_grants["agent_publishes_dead_letters"]["topic"] == (
        "${google_pubsub_topic.dead_letter.id}"
    )
    assert sub_grants["agent_acks_push_subscription"]["role"] == "roles/pubsub.subscriber"


def test_bigquery_table_is_the_schema_file() -> None:
    table = resources("google_bigquery_table")["raw_events"]
    assert table["schema"] == "${local.raw_schema}"
    assert table["clustering"] == "${local.bq_tables.raw_table.clustering}"
    assert table["time_partitioning"][0]["field"] == (
        "${local.bq_tables.raw_table.time_partitioning.field}"
    )


def test_worker_timeout_and_ack_deadline_agree() -> None:
    worker = resources("google_cloud_run_v2_service")["worker"]
    assert worker["template"][0]["timeout"] == "${local.topology.worker_request_timeout_seconds}s"
    assert (
        TOPOLOGY["subscriptions"]["worker-push"]["ack_deadline_seconds"]
        >= (TOPOLOGY["worker_request_timeout_seconds"])
    )
    assert worker["ingress"] == "INGRESS_TRAFFIC_INTERNAL_ONLY"


def test_least_privilege() -> None:
    everything = "\n".join(
        line
        for text in SOURCES.values()
        for line in text.splitlines()
        if not line.strip().startswith("#")
    )
    for role in ("roles/editor", "roles/owner", "roles/viewer", "roles/iam.securityAdmin"):
        assert f'"{role}"' not in everything
    assert "google_service_account_key" not in everything
    grants = resources("google_project_iam_member")
    plan = grants.pop("plan_reads_configuration")
    assert {r["role"] for r in grants.values()} == {"roles/bigquery.jobUser", "roles/run.admin"}
    # The pull requests' plan account reads configuration only.
    assert plan["member"] == "${google_service_account.plan.member}"
    plan_roles = re.findall(r'"(roles/[^"]+)"', plan["for_each"])
    assert "roles/run.viewer" in plan_roles
    for role in plan_roles:
        assert re.fullmatch(r"roles/(browser|[\w.]+\.(\w*[vV]iewer|reader|securityReviewer))", role)


def test_each_github_context_acts_as_one_account() -> None:
    """Pull requests may plan (read-only) but never deploy; production jobs deploy."""
    bindings = {
        r["service_account_id"]: r["member"]
        for r in resources("google_service_account_iam_member").values()
        if r["role"] == "roles/iam.workloadIdentityUser"
    }
    assert bindings == {
        "${google_service_account.ci.name}": "principal://iam.googleapis.com/"
        "${google_iam_workload_identity_pool.github.name}/subject/"
        "${local.github_subjects.production}",
        "${google_service_account.plan.name}": "principal://iam.googleapis.com/"
        "${google_iam_workload_identity_pool.github.name}/subject/"
        "${local.github_subjects.pull_request}",
    }
    subjects = re.search(r"github_subjects = \{(.*?)\}", SOURCES["locals.tf"], re.S)
    assert subjects
    condition = resources("google_iam_workload_identity_pool_provider")["github"][
        "attribute_condition"
    ]
    for subject in re.findall(r'= "([^"]+)"', subjects.group(1)):
        assert f"assertion.sub == '{subject}'" in condition
    assert condition.count("assertion.sub ==") == 2


def test_logs_based_metrics_read_events_the_worker_writes() -> None:
    """A logs-based metric whose filter names an event or field the worker no longer logs counts
    nothing, silently. Each must match a canonical log line the worker writes."""
    worker = (REPO / "worker/hookpipe_worker/app.py").read_text()
    metrics = resources("google_logging_metric")
    assert metrics
    for name, metric in metrics.items():
        events = re.findall(r'jsonPayload\.event=\\?"(\w+)', metric["filter"])
        assert events, f"{name}: its filter names no worker log event"
        for event in events:
            assert f'"event": "{event}"' in worker, f"{name}: the worker logs no {event!r} event"
        for extracted in re.findall(
            r"EXTRACT\(jsonPayload\.(\w+)\)", metric.get("value_extractor", "")
        ):
            assert f'"{extracted}":' in worker, f"{name}: the worker logs no {extracted!r} field"
