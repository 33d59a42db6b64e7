# `hookpipe reconcile leadprosper` as a Cloud Run job on an hourly Cloud Scheduler tick
# (docs/reconcile.md): LeadProsper's own API is the last line against webhooks that never reached
# ingest, and against returns, which no trigger sends.

resource "google_service_account" "reconcile" {
  account_id   = "hookpipe-reconcile"
  display_name = "hookpipe reconcile (Cloud Run job)"
}

# Secret names only; values are added out of band (docs/deploy.md). Its own database URL: a
# Postgres role that reads what it compares and writes only the reconcile's own columns and
# tables (infra/supabase/migrations/*_reconcile_role.sql), not the worker's.
resource "google_secret_manager_secret" "leadprosper_api_key" {
  secret_id = "hookpipe-leadprosper-api-key"
  replication {
    auto {}
  }
}

resource "google_secret_manager_secret" "reconcile_database_url" {
  secret_id = "hookpipe-reconcile-database-url"
  replication {
    auto {}
  }
}

resource "google_secret_manager_secret_iam_member" "reconcile_reads_secrets" {
  for_each = {
    api_key      = google_secret_manager_secret.leadprosper_api_key.id
    database_url = google_secret_manager_secret.reconcile_database_url.id
  }
  secret_id = each.value
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.reconcile.member
}

# It publishes what is missing to the events topic; nothing else in Pub/Sub.
resource "google_pubsub_topic_iam_member" "reconcile_publishes" {
  topic  = google_pubsub_topic.events.id
  role   = "roles/pubsub.publisher"
  member = google_service_account.reconcile.member
}

# The scheduler may start the job, nothing else.
resource "google_cloud_run_v2_job_iam_member" "scheduler_runs_reconcile" {
  name     = google_cloud_run_v2_job.reconcile.name
  location = var.region
  role     = "roles/run.invoker"
  member   = google_service_account.scheduler.member
}

resource "google_cloud_run_v2_job" "reconcile" {
  name     = "hookpipe-reconcile-leadprosper"
  location = var.region

  template {
    task_count = 1
    template {
      service_account = google_service_account.reconcile.email
      # A 48 h window of a busy account at 60 requests a minute fits well inside (its floor, in
      # docs/benchmarks.md "bench-reconcile"); the lease outlives a killed task by 10 minutes.
      timeout = "3000s"
      # One retry: it resumes from the checkpoints once the killed attempt's lease expired.
      max_retries = 1
      containers {
        image   = var.ops_image
        command = ["hookpipe"]
        args    = ["reconcile", "leadprosper", "--topic", google_pubsub_topic.events.name]
        resources {
          limits = { cpu = "1", memory = "512Mi" }
        }
        env {
          name  = "HOOKPIPE_PROJECT_ID"
          value = var.project_id
        }
        env {
          name = "HOOKPIPE_LEADPROSPER_API_KEY"
          value_source {
            secret_key_ref {
              secret  = google_secret_manager_secret.leadprosper_api_key.secret_id
              version = "latest"
            }
          }
        }
        env {
          name = "HOOKPIPE_DATABASE_URL"
          value_source {
            secret_key_ref {
              secret  = google_secret_manager_secret.reconcile_database_url.secret_id
              version = "latest"
            }
          }
        }
      }
    }
  }

  lifecycle {
    ignore_changes = [template[0].template[0].containers[0].image, client, client_version]
  }
  depends_on = [google_project_service.apis]
}

# Hourly, over the source's window (48 h): every lead is looked at about 48 times, so a return
# reaches current state within the hour, and a missed webhook is backfilled within the hour.
resource "google_cloud_scheduler_job" "reconcile" {
  name      = "hookpipe-reconcile-leadprosper"
  region    = var.region
  schedule  = "17 * * * *"
  time_zone = "Etc/UTC"
  http_target {
    http_method = "POST"
    uri         = "https://run.googleapis.com/v2/projects/${var.project_id}/locations/${var.region}/jobs/${google_cloud_run_v2_job.reconcile.name}:run"
    oauth_token {
      service_account_email = google_service_account.scheduler.email
    }
  }
  depends_on = [google_project_service.apis]
}

# Each run's one log line (event reconcile_run): the runs that backfilled, and those that finished.
resource "google_logging_metric" "reconcile_backfilled" {
  name   = "hookpipe/reconcile_runs_that_backfilled"
  filter = "resource.type=\"cloud_run_job\" AND resource.labels.job_name=\"${google_cloud_run_v2_job.reconcile.name}\" AND jsonPayload.event=\"reconcile_run\" AND jsonPayload.dry_run=false AND jsonPayload.backfilled>0"
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"
  }
}

resource "google_logging_metric" "reconcile_finished" {
  name   = "hookpipe/reconcile_finished"
  filter = "resource.type=\"cloud_run_job\" AND resource.labels.job_name=\"${google_cloud_run_v2_job.reconcile.name}\" AND jsonPayload.event=\"reconcile_run\" AND jsonPayload.finished=true"
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"
  }
}

# A run backfilled something: webhooks are being lost before ingest (or returns came in, which
# backfill too). Not an outage, a leak.
resource "google_monitoring_alert_policy" "reconcile_backfilled" {
  display_name = "hookpipe reconcile: a run backfilled leads no webhook brought"
  combiner     = "OR"
  conditions {
    display_name = "a run that backfilled, in the last hour"
    condition_threshold {
      filter          = "resource.type = \"cloud_run_job\" AND metric.type = \"logging.googleapis.com/user/${google_logging_metric.reconcile_backfilled.name}\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period     = "3600s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }
  notification_channels = var.notification_channels
  documentation {
    content = "The reconcile found leads or returns in LeadProsper's API that no webhook brought, and backfilled them: they are in both sinks now, but webhooks are being lost before ingest. Follow 'Runbook: the reconcile backfilled leads'. ${local.runbook}"
  }
}

resource "google_monitoring_alert_policy" "reconcile_not_finishing" {
  display_name = "hookpipe reconcile: no run finished for 3 h"
  combiner     = "OR"
  conditions {
    display_name = "no finished reconcile run for 3 h"
    condition_absent {
      filter   = "resource.type = \"cloud_run_job\" AND metric.type = \"logging.googleapis.com/user/${google_logging_metric.reconcile_finished.name}\""
      duration = "10800s"
      aggregations {
        alignment_period     = "3600s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }
  notification_channels = var.notification_channels
  documentation {
    content = "No reconcile run finished its window for 3 hours: leads lost before ingest are not being backfilled, and returns do not reach current state. Follow 'Runbook: the reconcile is not finishing'. ${local.runbook}"
  }
}
