"""Terraform checks that run offline (the google provider cannot be downloaded here, so no
`terraform validate`): formatting, agreement with the settings files, least privilege.
checkov runs from `make infra-check`."""

from __future__ import annotations

import copy
import functools
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


@functools.cache
def _parsed() -> list[dict[str, Any]]:
    """Every .tf file, parsed once per session (hcl2 is slow)."""
    return [_clean(hcl2.load(path.open())) for path in sorted(TF.glob("*.tf"))]


def resources(kind: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for parsed in _parsed():
        for block in parsed.get("resource", []):
            found.update(copy.deepcopy(block.get(kind, {})))
    return found


def data_sources(kind: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for parsed in _parsed():
        for block in parsed.get("data", []):
            found.update(copy.deepcopy(block.get(kind, {})))
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
    "local.archive_sub": TOPOLOGY["subscriptions"]["dead-letter-archive"],
    "local.bq_tables": TABLES,
}


def test_every_reference_to_a_settings_file_resolves() -> None:
    """A field renamed or removed in the JSON files breaks this test, not a deploy."""
    pattern = re.compile(
        r"(local\.(?:topology|push_sub|dlq_sub|archive_sub|bq_tables))((?:\.[a-z_]+)+)"
    )
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
    plan_metrics = grants.pop("plan_reads_log_metrics")
    # CI deploys as run.developer (run.admin could make the worker public) and runs the smoke
    # test's query; nothing else holds a project-wide role. The worker runs no jobs at all.
    assert {r["role"] for r in grants.values()} == {"roles/bigquery.jobUser", "roles/run.developer"}
    assert all(r["member"] == "${google_service_account.ci.member}" for r in grants.values())
    # The pull requests' plan account reads configuration only: never log entries, which can
    # hold `?token=` URLs.
    assert plan["member"] == plan_metrics["member"] == "${google_service_account.plan.member}"
    plan_roles = re.findall(r'"(roles/[^"]+)"', plan["for_each"])
    assert "roles/run.viewer" in plan_roles
    assert "roles/logging.viewer" not in plan_roles
    for role in plan_roles:
        assert re.fullmatch(r"roles/(browser|[\w.]+\.(\w*[vV]iewer|reader|securityReviewer))", role)
    custom = resources("google_project_iam_custom_role")
    assert plan_metrics["role"] == "${google_project_iam_custom_role.logging_config_viewer.id}"
    assert custom["logging_config_viewer"]["permissions"] == [
        "logging.logMetrics.get",
        "logging.logMetrics.list",
    ]
    # The worker streams rows into its two tables and can do nothing else to them.
    assert custom["bigquery_row_inserter"]["permissions"] == [
        "bigquery.tables.get",
        "bigquery.tables.updateData",
    ]
    table_grants = resources("google_bigquery_table_iam_member")["worker_inserts_rows"]
    assert table_grants["role"] == "${google_project_iam_custom_role.bigquery_row_inserter.id}"
    assert not resources("google_bigquery_dataset_iam_member").get("worker_writes_rows")


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


# Where each Cloud Run resource's log lines are written.
LOGGERS = {
    "google_cloud_run_v2_service.worker": [
        "worker/hookpipe_worker/app.py",  # the request lines
        "worker/hookpipe_worker/bootstrap.py",  # batches and their retries
    ],
    "google_cloud_run_v2_service.ingest": ["ingest/hookpipe_ingest/app.py"],
    "google_cloud_run_v2_job.spool_drainer": ["ingest/hookpipe_ingest/drain.py"],
    "google_cloud_run_v2_job.reconcile": ["ops/hookpipe_ops/cli/reconcile.py"],
}


def test_logs_based_metrics_read_events_the_services_write() -> None:
    """A logs-based metric whose filter names an event or field its service no longer logs counts
    nothing, silently. Each must match a canonical log line that service writes."""
    metrics = resources("google_logging_metric")
    assert len(metrics) >= 5
    for name, metric in metrics.items():
        [owner] = re.findall(r"\$\{(google_cloud_run_v2_\w+\.\w+)\.name\}", metric["filter"])
        code = "".join((REPO / path).read_text() for path in LOGGERS[owner])
        if "log_request(" in code:  # the canonical request line's own fields are written there
            code += (REPO / "shared/hookpipe/logging.py").read_text()
        events = re.findall(r'jsonPayload\.event=\\?"(\w+)', metric["filter"])
        assert events, f"{name}: its filter names no log event"
        for event in events:
            # Logged as a literal field, or named by the route that logs it (event="push").
            logged = f'"event": "{event}"' in code or f'event="{event}"' in code
            assert logged, f"{name}: {owner} logs no {event!r} event"
        extractors = [
            metric.get("value_extractor", ""),
            *metric.get("label_extractors", {}).values(),
        ]
        for extracted in re.findall(r"EXTRACT\(jsonPayload\.(\w+)\)", " ".join(extractors)):
            assert f'"{extracted}"' in code, f"{name}: {owner} logs no {extracted!r} field"
        for compared in set(re.findall(r"jsonPayload\.(\w+)", metric["filter"])) - {"event"}:
            assert f'"{compared}"' in code, f"{name}: {owner} logs no {compared!r} field"


def test_quiet_period_alerts_follow_the_sources_file() -> None:
    from hookpipe.sources import load_source_configs

    configured = {
        name: config.quiet_alert_minutes
        for name, config in load_source_configs(REPO / "infra/sources.toml").items()
        if config.quiet_alert_minutes is not None
    }
    found = re.search(r"source_quiet_minutes = \{(.*?)\}", SOURCES["alerts.tf"], re.S)
    assert found, "alerts.tf: locals.source_quiet_minutes"
    in_terraform = {k: int(v) for k, v in re.findall(r"(\w+)\s*=\s*(\d+)", found.group(1))}
    assert in_terraform == configured
    quiet = resources("google_monitoring_alert_policy")["source_quiet"]
    assert quiet["for_each"] == "${local.source_quiet_minutes}"


def test_alerts_for_senders_that_never_retry_and_for_the_spool() -> None:
    alerts = resources("google_monitoring_alert_policy")
    for name in (
        "sender_unauthenticated",
        "source_quiet",
        "spool_not_drained",
        "archive_behind",
        "reconcile_backfilled",
        "reconcile_not_finishing",
    ):
        assert name in alerts
        assert alerts[name]["notification_channels"] == "${var.notification_channels}"
        assert "Runbook: " in alerts[name]["documentation"][0]["content"]
    operations = (REPO / "docs/operations.md").read_text()
    runbooks = re.findall(r"Runbook: ([^'.]+)'", SOURCES["alerts.tf"] + SOURCES["reconcile.tf"])
    assert "the reconcile backfilled leads" in runbooks
    for runbook in runbooks:
        assert f"Runbook: {runbook}" in operations, runbook


def test_spool_bucket_keeps_objects_until_drained_and_ingest_can_only_create() -> None:
    bucket = resources("google_storage_bucket")["spool"]
    assert bucket["uniform_bucket_level_access"] is True
    assert bucket["public_access_prevention"] == "enforced"
    assert "lifecycle_rule" not in bucket, "a lifecycle rule could delete an undrained webhook"
    assert bucket["soft_delete_policy"] == [{"retention_duration_seconds": 0}]
    # Authoritative: exactly ingest (create) and the drainer (get, list, delete), nobody else.
    assert not [
        g
        for kind in ("google_storage_bucket_iam_member", "google_storage_bucket_iam_binding")
        for g in resources(kind).values()
        if g["bucket"] == "${google_storage_bucket.spool.name}"
    ]
    policy = resources("google_storage_bucket_iam_policy")["spool"]
    assert policy["policy_data"] == "${data.google_iam_policy.spool.policy_data}"
    bindings = {
        (b["role"], tuple(b["members"]))
        for b in data_sources("google_iam_policy")["spool"]["binding"]
    }
    assert bindings == {
        ("roles/storage.objectCreator", ("${google_service_account.ingest.member}",)),
        (
            "${google_project_iam_custom_role.spool_drainer.id}",
            ("${google_service_account.spool_drainer.member}",),
        ),
    }
    role = resources("google_project_iam_custom_role")["spool_drainer"]
    assert sorted(role["permissions"]) == [
        "storage.objects.delete",
        "storage.objects.get",
        "storage.objects.list",
    ]
    job = resources("google_cloud_run_v2_job")["spool_drainer"]
    template = job["template"][0]["template"][0]
    assert template["service_account"] == "${google_service_account.spool_drainer.email}"
    assert template["containers"][0]["command"] == ["hookpipe-spool", "drain"]


def test_a_drain_pass_ends_inside_its_job_and_before_the_next_tick() -> None:
    """Executions every minute with a 300 s timeout overlapped and drained the same names in the
    same order. A pass now starts nothing after its deadline: that, plus the last objects'
    publish and spool calls, must fit the job's timeout, and the deadline the scheduler's tick."""
    from hookpipe_ingest.drain import DrainSettings

    defaults = DrainSettings.model_fields
    deadline = defaults["drain_deadline_seconds"].default
    last_object = defaults["publish_timeout_seconds"].default + 3 * (
        defaults["spool_timeout_seconds"].default
    )
    job = resources("google_cloud_run_v2_job")["spool_drainer"]["template"][0]["template"][0]
    timeout = float(job["timeout"].removesuffix("s"))
    tick = resources("google_cloud_scheduler_job")["spool_drain"]["schedule"]
    assert tick == "* * * * *"
    assert deadline + last_object < timeout
    assert deadline < 60


def test_the_reconcile_job_runs_hourly_as_its_own_account_with_only_what_it_needs() -> None:
    """It publishes to the events topic and reads its two secrets; the scheduler may start it.
    Nothing else names its account (it reads and writes Postgres through its own role)."""
    from hookpipe_ops.reconcile_ledger import LEASE_SECONDS

    member = "${google_service_account.reconcile.member}"
    grants = [
        (kind, name, grant)
        for kind in (
            "google_project_iam_member",
            "google_pubsub_topic_iam_member",
            "google_pubsub_subscription_iam_member",
            "google_secret_manager_secret_iam_member",
            "google_storage_bucket_iam_member",
            "google_bigquery_dataset_iam_member",
            "google_bigquery_table_iam_member",
        )
        for name, grant in resources(kind).items()
        if grant.get("member") == member
    ]
    assert {(kind, name) for kind, name, _ in grants} == {
        ("google_pubsub_topic_iam_member", "reconcile_publishes"),
        ("google_secret_manager_secret_iam_member", "reconcile_reads_secrets"),
    }
    publish = resources("google_pubsub_topic_iam_member")["reconcile_publishes"]
    assert (publish["topic"], publish["role"]) == (
        "${google_pubsub_topic.events.id}",
        "roles/pubsub.publisher",
    )
    job = resources("google_cloud_run_v2_job")["reconcile"]["template"][0]["template"][0]
    assert job["service_account"] == "${google_service_account.reconcile.email}"
    [container] = job["containers"]
    assert container["args"][:2] == ["reconcile", "leadprosper"]
    secrets = {
        env["name"]: env["value_source"][0]["secret_key_ref"][0]["secret"]
        for env in container["env"]
        if "value_source" in env
    }
    assert secrets == {
        "HOOKPIPE_LEADPROSPER_API_KEY": "${google_secret_manager_secret.leadprosper_api_key"
        ".secret_id}",
        "HOOKPIPE_DATABASE_URL": "${google_secret_manager_secret.reconcile_database_url.secret_id}",
    }
    # A killed attempt's retry finds its lease expired well within the job's time.
    assert job["max_retries"] == 1
    assert float(job["timeout"].removesuffix("s")) > 2 * LEASE_SECONDS
    tick = resources("google_cloud_scheduler_job")["reconcile"]
    assert re.fullmatch(r"\d+ \* \* \* \*", tick["schedule"])  # hourly
    assert tick["http_target"][0]["oauth_token"][0]["service_account_email"] == (
        "${google_service_account.scheduler.email}"
    )
    invoker = resources("google_cloud_run_v2_job_iam_member")["scheduler_runs_reconcile"]
    assert invoker["role"] == "roles/run.invoker"
