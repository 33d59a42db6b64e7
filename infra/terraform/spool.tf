# Ingest's durable spool (docs/delivery.md, "The spool"): where a webhook is kept when Pub/Sub
# does not confirm it in time, one object per event id, until the drainer republishes it.

resource "google_storage_bucket" "spool" {
  # checkov:skip=CKV_GCP_62:access logs would record event ids only; Cloud Audit Logs cover who touched the bucket
  # checkov:skip=CKV_GCP_78:versioning would keep every drained event's bytes; objects are create-only (if_generation_match=0)
  name                        = "${var.project_id}-hookpipe-spool"
  location                    = var.region
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false
  # No lifecycle rule: an object is deleted only by the drainer, after Pub/Sub confirmed it.
  # A rule that expired objects would delete undrained webhooks.
  # No soft delete: a drained body (personal data, already in both sinks) must not be kept on.
  soft_delete_policy {
    retention_duration_seconds = 0
  }
  depends_on = [google_project_service.apis]
}

resource "google_service_account" "spool_drainer" {
  account_id   = "hookpipe-spool-drainer"
  display_name = "hookpipe spool drainer (Cloud Run job)"
}

resource "google_service_account" "scheduler" {
  account_id   = "hookpipe-scheduler"
  display_name = "hookpipe Cloud Scheduler (starts the spool drainer and the reconcile)"
}

# Who may touch spooled bodies (they hold personal data), authoritatively: this policy replaces
# every other grant on the bucket, the project viewers', editors' and owners' convenience grants
# included, so exactly two identities can reach the objects (docs/deploy.md lists what each may
# do). Project owners keep administering the bucket itself through their project role.
#
# ingest: create objects only. objectCreator cannot read, list, overwrite or delete, so a
# compromised ingest cannot read or destroy what is spooled.
# drainer: list, read and delete; it cannot create or overwrite (objectUser could).
resource "google_project_iam_custom_role" "spool_drainer" {
  role_id     = "hookpipeSpoolDrainer"
  title       = "hookpipe spool drainer"
  description = "Lists, reads and deletes spooled objects; cannot create or overwrite them."
  permissions = ["storage.objects.get", "storage.objects.list", "storage.objects.delete"]
}

data "google_iam_policy" "spool" {
  binding {
    role    = "roles/storage.objectCreator"
    members = [google_service_account.ingest.member]
  }
  binding {
    role    = google_project_iam_custom_role.spool_drainer.id
    members = [google_service_account.spool_drainer.member]
  }
}

resource "google_storage_bucket_iam_policy" "spool" {
  bucket      = google_storage_bucket.spool.name
  policy_data = data.google_iam_policy.spool.policy_data
}

resource "google_pubsub_topic_iam_member" "drainer_publishes" {
  topic  = google_pubsub_topic.events.id
  role   = "roles/pubsub.publisher"
  member = google_service_account.spool_drainer.member
}

# The scheduler may start the drainer job, nothing else.
resource "google_cloud_run_v2_job_iam_member" "scheduler_runs_drainer" {
  name     = google_cloud_run_v2_job.spool_drainer.name
  location = var.region
  role     = "roles/run.invoker"
  member   = google_service_account.scheduler.member
}

# The drainer runs ingest's image with another command (its code is ingest's: hookpipe_ingest.drain).
resource "google_cloud_run_v2_job" "spool_drainer" {
  name     = "hookpipe-spool-drainer"
  location = var.region

  template {
    task_count = 1
    template {
      service_account = google_service_account.spool_drainer.email
      timeout         = "120s" # a pass starts nothing after 45 s (HOOKPIPE_DRAIN_DEADLINE_SECONDS)
      max_retries     = 0      # the next tick is the retry
      containers {
        image   = var.ingest_image
        command = ["hookpipe-spool", "drain"]
        resources {
          limits = { cpu = "1", memory = "512Mi" }
        }
        env {
          name  = "HOOKPIPE_PROJECT_ID"
          value = var.project_id
        }
        env {
          name  = "HOOKPIPE_EVENTS_TOPIC"
          value = google_pubsub_topic.events.name
        }
        env {
          name  = "HOOKPIPE_SPOOL_BUCKET"
          value = google_storage_bucket.spool.name
        }
      }
    }
  }

  lifecycle {
    ignore_changes = [template[0].template[0].containers[0].image, client, client_version]
  }
  depends_on = [google_project_service.apis]
}

# Every minute: the worst-case drain delay is this tick plus one pass (docs/delivery.md).
resource "google_cloud_scheduler_job" "spool_drain" {
  name      = "hookpipe-spool-drain"
  region    = var.region
  schedule  = "* * * * *"
  time_zone = "Etc/UTC"
  http_target {
    http_method = "POST"
    uri         = "https://run.googleapis.com/v2/projects/${var.project_id}/locations/${var.region}/jobs/${google_cloud_run_v2_job.spool_drainer.name}:run"
    oauth_token {
      service_account_email = google_service_account.scheduler.email
    }
  }
  depends_on = [google_project_service.apis]
}
