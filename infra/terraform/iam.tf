# One service account per role, each with only what it needs. No roles/editor, no keys.

resource "google_service_account" "ingest" {
  account_id   = "hookpipe-ingest"
  display_name = "hookpipe ingest (Cloud Run)"
}

resource "google_service_account" "worker" {
  account_id   = "hookpipe-worker"
  display_name = "hookpipe worker (Cloud Run)"
}

resource "google_service_account" "push" {
  account_id   = "hookpipe-push"
  display_name = "hookpipe Pub/Sub push identity (invokes the worker)"
}

resource "google_service_account" "ci" {
  account_id   = "hookpipe-ci"
  display_name = "hookpipe GitHub Actions deployer (Workload Identity Federation)"
}

resource "google_service_account" "plan" {
  account_id   = "hookpipe-tf-plan"
  display_name = "hookpipe terraform plan on pull requests (read-only)"
}

# ingest: publish to the events topic, read its metadata for /readyz, read its own secrets.
resource "google_pubsub_topic_iam_member" "ingest_publishes" {
  topic  = google_pubsub_topic.events.id
  role   = "roles/pubsub.publisher"
  member = google_service_account.ingest.member
}

resource "google_pubsub_topic_iam_member" "ingest_checks_topic" {
  topic  = google_pubsub_topic.events.id
  role   = "roles/pubsub.viewer"
  member = google_service_account.ingest.member
}

# worker: insert rows into its two tables (the Storage Write API's default stream, or insertAll),
# publish dead letters, read the DB secret. Not roles/bigquery.dataEditor (it could delete tables
# and, with jobUser, rows by DML) and no jobUser at all: the worker runs no jobs. Both write paths
# need tables.updateData; tables.get reads the schema the Storage Write rows are encoded with.
resource "google_project_iam_custom_role" "bigquery_row_inserter" {
  role_id     = "hookpipeBigQueryRowInserter"
  title       = "hookpipe BigQuery row inserter"
  description = "Streams rows into a table (Storage Write API or insertAll); cannot read, query, delete or change tables."
  permissions = ["bigquery.tables.get", "bigquery.tables.updateData"]
}

resource "google_bigquery_table_iam_member" "worker_inserts_rows" {
  for_each   = { raw_events = google_bigquery_table.raw_events.table_id, dead_letters = google_bigquery_table.dead_letters.table_id }
  dataset_id = google_bigquery_dataset.hookpipe.dataset_id
  table_id   = each.value
  role       = google_project_iam_custom_role.bigquery_row_inserter.id
  member     = google_service_account.worker.member
}

resource "google_pubsub_topic_iam_member" "worker_publishes_dead_letters" {
  topic  = google_pubsub_topic.dead_letter.id
  role   = "roles/pubsub.publisher"
  member = google_service_account.worker.member
}

# push: may invoke the worker, nothing else.
resource "google_cloud_run_v2_service_iam_member" "push_invokes_worker" {
  name     = google_cloud_run_v2_service.worker.name
  location = var.region
  role     = "roles/run.invoker"
  member   = google_service_account.push.member
}

# Pub/Sub mints the push identity's OIDC tokens.
resource "google_service_account_iam_member" "agent_mints_push_tokens" {
  service_account_id = google_service_account.push.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_service_agent
}

# CI: deploy revisions and the jobs' images, act as the runtime accounts only, push
# images. run.developer, not run.admin: it cannot set IAM policy on a service (e.g. make the
# worker public).
resource "google_project_iam_member" "ci_deploys" {
  project = var.project_id
  role    = "roles/run.developer"
  member  = google_service_account.ci.member
}

resource "google_service_account_iam_member" "ci_acts_as_runtime" {
  for_each = {
    ingest        = google_service_account.ingest.name
    worker        = google_service_account.worker.name
    spool_drainer = google_service_account.spool_drainer.name
    reconcile     = google_service_account.reconcile.name
  }
  service_account_id = each.value
  role               = "roles/iam.serviceAccountUser"
  member             = google_service_account.ci.member
}

resource "google_artifact_registry_repository_iam_member" "ci_pushes_images" {
  repository = google_artifact_registry_repository.images.name
  location   = var.region
  role       = "roles/artifactregistry.writer"
  member     = google_service_account.ci.member
}

# CI's smoke test (`hookpipe smoke`) reads the row it sent back out of BigQuery.
resource "google_bigquery_dataset_iam_member" "ci_reads_smoke_rows" {
  dataset_id = google_bigquery_dataset.hookpipe.dataset_id
  role       = "roles/bigquery.dataViewer"
  member     = google_service_account.ci.member
}

resource "google_project_iam_member" "ci_runs_smoke_queries" {
  project = var.project_id
  role    = "roles/bigquery.jobUser"
  member  = google_service_account.ci.member
}

# plan: reads the configuration of everything this module manages, and its state (plans on pull
# requests run with -lock=false, so no write on the bucket). Viewer roles per service rather than
# roles/viewer, which would also let pull requests read BigQuery rows. Not roles/logging.viewer:
# a pull request runs its own Terraform as this account, and request logs can hold `?token=`
# URLs; it reads logs-based metric definitions through a custom role instead.
resource "google_project_iam_member" "plan_reads_configuration" {
  for_each = toset([
    "roles/browser", "roles/serviceusage.serviceUsageViewer", "roles/iam.securityReviewer",
    "roles/iam.workloadIdentityPoolViewer", "roles/run.viewer", "roles/pubsub.viewer",
    "roles/bigquery.metadataViewer", "roles/secretmanager.viewer", "roles/artifactregistry.reader",
    "roles/monitoring.viewer", "roles/compute.networkViewer", "roles/vpcaccess.viewer",
    "roles/cloudscheduler.viewer", "roles/storage.bucketViewer",
  ])
  project = var.project_id
  role    = each.value
  member  = google_service_account.plan.member
}

resource "google_project_iam_custom_role" "logging_config_viewer" {
  role_id     = "hookpipeLoggingConfigViewer"
  title       = "hookpipe logging configuration viewer"
  description = "Reads logs-based metric definitions; cannot read log entries."
  permissions = ["logging.logMetrics.get", "logging.logMetrics.list"]
}

resource "google_project_iam_member" "plan_reads_log_metrics" {
  project = var.project_id
  role    = google_project_iam_custom_role.logging_config_viewer.id
  member  = google_service_account.plan.member
}

resource "google_storage_bucket_iam_member" "plan_reads_state" {
  bucket = var.state_bucket
  role   = "roles/storage.objectViewer"
  member = google_service_account.plan.member
}

# Workload Identity Federation: GitHub Actions of this repository only, no keys.
resource "google_iam_workload_identity_pool" "github" {
  workload_identity_pool_id = "github"
  display_name              = "GitHub Actions"
}

resource "google_iam_workload_identity_pool_provider" "github" {
  workload_identity_pool_id          = google_iam_workload_identity_pool.github.workload_identity_pool_id
  workload_identity_pool_provider_id = "github"
  display_name                       = "GitHub OIDC"
  attribute_mapping = {
    "google.subject"       = "assertion.sub"
    "attribute.repository" = "assertion.repository"
    "attribute.ref"        = "assertion.ref"
  }
  # Only this repository's jobs in its protected "production" environment (deploy, rollback,
  # terraform apply) and its pull requests (terraform plan; GitHub gives forks' pull requests no
  # token) may exchange their token; which account each may act as is bound by subject below.
  # (Spelled out rather than through local.github_subjects: checkov's CKV_GCP_125 reads the
  # literal claim; a test keeps the two in step.)
  attribute_condition = "assertion.sub == 'repo:${var.github_owner}/${var.github_repo}:environment:production' || assertion.sub == 'repo:${var.github_owner}/${var.github_repo}:pull_request'"
  oidc {
    issuer_uri = "https://token.actions.githubusercontent.com"
  }
}

resource "google_service_account_iam_member" "production_jobs_act_as_ci" {
  service_account_id = google_service_account.ci.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "principal://iam.googleapis.com/${google_iam_workload_identity_pool.github.name}/subject/${local.github_subjects.production}"
}

resource "google_service_account_iam_member" "pull_requests_act_as_plan" {
  service_account_id = google_service_account.plan.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "principal://iam.googleapis.com/${google_iam_workload_identity_pool.github.name}/subject/${local.github_subjects.pull_request}"
}
