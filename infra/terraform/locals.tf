# The settings files the local stack and the hookpipe CLI read too: Terraform reads the same
# files, so topology, subscription settings and the BigQuery schema cannot drift between them.
locals {
  topology    = jsondecode(file("${path.module}/../pubsub/subscriptions.json"))
  push_sub    = local.topology.subscriptions["worker-push"]
  dlq_sub     = local.topology.subscriptions["dead-letter-pull"]
  archive_sub = local.topology.subscriptions["dead-letter-archive"]
  bq_tables   = jsondecode(file("${path.module}/../bigquery/tables.json"))
  raw_schema  = file("${path.module}/../bigquery/${local.bq_tables.raw_table.schema_file}")

  pubsub_service_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
  # Cloud Run's deterministic URL, known before the service exists: the push endpoint and the
  # audience the worker verifies are the same string.
  worker_url      = "https://hookpipe-worker-${data.google_project.this.number}.${var.region}.run.app"
  worker_push_url = "${local.worker_url}${local.push_sub.push_path}"
  # The archive subscription's tokens carry the same audience: the worker checks one audience.
  worker_archive_url = "${local.worker_url}${local.archive_sub.push_path}"

  # GitHub's OIDC subject claims for this repository's jobs: in the production environment, and
  # on pull requests (jobs without an environment).
  github_subjects = {
    production   = "repo:${var.github_owner}/${var.github_repo}:environment:production"
    pull_request = "repo:${var.github_owner}/${var.github_repo}:pull_request"
  }
}
