# Revisions after the first are shipped by .github/workflows/deploy.yml (tagged, smoke-tested,
# then promoted), so Terraform owns the service's shape and ignores image and traffic.

resource "google_cloud_run_v2_service" "ingest" {
  name     = "hookpipe-ingest"
  location = var.region
  # Senders call it from the internet; it authenticates every webhook itself.
  ingress = "INGRESS_TRAFFIC_ALL"

  template {
    service_account                  = google_service_account.ingest.email
    max_instance_request_concurrency = 80
    timeout                          = "15s" # publish 5 s + spool 5 s; senders time out at 10-15 s
    scaling {
      min_instance_count = 1 # LeadProsper does not retry: keep one instance warm
      max_instance_count = var.ingest_max_instances
    }
    containers {
      image = var.ingest_image
      resources {
        limits   = { cpu = "1", memory = "512Mi" }
        cpu_idle = true # no background work outside requests
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
        name  = "HOOKPIPE_SPOOL_BUCKET" # kept here when Pub/Sub does not confirm (spool.tf)
        value = google_storage_bucket.spool.name
      }
      env {
        name = "HOOKPIPE_LEADPROSPER_TOKENS"
        value_source {
          secret_key_ref {
            secret  = google_secret_manager_secret.leadprosper_tokens.secret_id
            version = "latest"
          }
        }
      }
      startup_probe {
        http_get {
          path = "/readyz"
        }
        period_seconds    = 2
        failure_threshold = 15
      }
      liveness_probe {
        http_get {
          path = "/healthz"
        }
        period_seconds = 15
      }
    }
  }

  lifecycle {
    ignore_changes = [template[0].containers[0].image, traffic, client, client_version]
  }
  depends_on = [google_project_service.apis]
}

resource "google_cloud_run_v2_service" "worker" {
  name     = "hookpipe-worker"
  location = var.region
  # Only Pub/Sub push (same project) reaches it, with an OIDC token for the push account.
  ingress = "INGRESS_TRAFFIC_INTERNAL_ONLY"

  template {
    service_account = google_service_account.worker.email
    # Group commit needs many pushes in one instance at once.
    max_instance_request_concurrency = 250
    # Equal to the push subscription's ack deadline (both from subscriptions.json): a longer
    # request than the deadline would be redelivered while still committing.
    timeout = "${local.topology.worker_request_timeout_seconds}s"
    scaling {
      min_instance_count = 0
      max_instance_count = var.worker_max_instances
    }
    dynamic "vpc_access" {
      for_each = var.static_egress ? [1] : []
      content {
        connector = google_vpc_access_connector.egress[0].id
        egress    = "ALL_TRAFFIC"
      }
    }
    containers {
      image = var.worker_image
      resources {
        limits = { cpu = "1", memory = "512Mi" }
        # Throttled outside requests is fine: every batch is flushed while the requests it
        # answers are still open, so no work runs between requests.
        cpu_idle = true
      }
      env {
        name  = "HOOKPIPE_PROJECT_ID"
        value = var.project_id
      }
      env {
        name  = "HOOKPIPE_DEAD_LETTER_TOPIC"
        value = google_pubsub_topic.dead_letter.name
      }
      env {
        name  = "HOOKPIPE_BIGQUERY_DATASET"
        value = google_bigquery_dataset.hookpipe.dataset_id
      }
      env {
        name  = "HOOKPIPE_PUSH_AUTH"
        value = "oidc"
      }
      env {
        name  = "HOOKPIPE_PUSH_SERVICE_ACCOUNT"
        value = google_service_account.push.email
      }
      env {
        name  = "HOOKPIPE_PUSH_AUDIENCE"
        value = local.worker_push_url # the audience the subscription's OIDC token carries
      }
      env {
        name  = "HOOKPIPE_POOL_MAX_SIZE"
        value = tostring(var.worker_pool_max_size)
      }
      env {
        name  = "HOOKPIPE_DATABASE_SSLMODE"
        value = "verify-full"
      }
      env {
        name  = "HOOKPIPE_DATABASE_SSLROOTCERT"
        value = "/etc/ssl/certs/ca-certificates.crt"
      }
      env {
        name = "HOOKPIPE_DATABASE_URL"
        value_source {
          secret_key_ref {
            secret  = google_secret_manager_secret.database_url.secret_id
            version = "latest"
          }
        }
      }
      startup_probe {
        http_get {
          path = "/healthz"
        }
        period_seconds    = 2
        failure_threshold = 15
      }
      liveness_probe {
        http_get {
          path = "/healthz"
        }
        period_seconds = 15
      }
    }
  }

  lifecycle {
    ignore_changes = [template[0].containers[0].image, traffic, client, client_version]
  }
  depends_on = [google_project_service.apis]
}

resource "google_cloud_run_v2_service_iam_member" "ingest_is_public" {
  name     = google_cloud_run_v2_service.ingest.name
  location = var.region
  role     = "roles/run.invoker"
  member   = "allUsers" # webhooks are authenticated by ingest itself (token or HMAC)
}
