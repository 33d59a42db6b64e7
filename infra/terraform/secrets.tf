# Secret names only; values are added out of band (docs/deploy.md), never in Terraform state.
resource "google_secret_manager_secret" "leadprosper_tokens" {
  secret_id = "hookpipe-leadprosper-tokens"
  replication {
    auto {}
  }
}

resource "google_secret_manager_secret" "database_url" {
  secret_id = "hookpipe-database-url"
  replication {
    auto {}
  }
}

resource "google_secret_manager_secret_iam_member" "ingest_reads_tokens" {
  secret_id = google_secret_manager_secret.leadprosper_tokens.id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.ingest.member
}

resource "google_secret_manager_secret_iam_member" "worker_reads_database_url" {
  secret_id = google_secret_manager_secret.database_url.id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.worker.member
}
