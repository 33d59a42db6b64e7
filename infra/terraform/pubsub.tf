resource "google_pubsub_topic" "events" {
  # checkov:skip=CKV_GCP_83:Google-managed encryption; messages live at most a day here
  name                       = local.topology.events_topic
  message_retention_duration = "86400s"
}

resource "google_pubsub_topic" "dead_letter" {
  # checkov:skip=CKV_GCP_83:Google-managed encryption, as for the events topic
  name                       = local.topology.dead_letter_topic
  message_retention_duration = "604800s"
}

resource "google_pubsub_subscription" "worker_push" {
  name                       = local.push_sub.name
  topic                      = google_pubsub_topic.events.id
  ack_deadline_seconds       = local.push_sub.ack_deadline_seconds
  message_retention_duration = "${local.push_sub.message_retention_seconds}s"

  push_config {
    push_endpoint = local.worker_push_url
    oidc_token {
      service_account_email = google_service_account.push.email
      audience              = local.worker_push_url
    }
  }

  retry_policy {
    minimum_backoff = "${local.push_sub.retry_policy.minimum_backoff_seconds}s"
    maximum_backoff = "${local.push_sub.retry_policy.maximum_backoff_seconds}s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter.id
    max_delivery_attempts = local.push_sub.dead_letter_policy.max_delivery_attempts
  }
}

resource "google_pubsub_subscription" "dead_letter_pull" {
  name                         = local.dlq_sub.name
  topic                        = google_pubsub_topic.dead_letter.id
  ack_deadline_seconds         = local.dlq_sub.ack_deadline_seconds
  message_retention_duration   = "${local.dlq_sub.message_retention_seconds}s"
  enable_exactly_once_delivery = local.dlq_sub.enable_exactly_once_delivery
  expiration_policy {
    ttl = "" # never expires, even when nobody pulls for a month
  }
}

# Every dead letter, pushed to the worker's archive endpoint (docs/delivery.md, "The dead-letter
# archive"). No dead-letter policy: retried with backoff until archived.
resource "google_pubsub_subscription" "dead_letter_archive" {
  name                       = local.archive_sub.name
  topic                      = google_pubsub_topic.dead_letter.id
  ack_deadline_seconds       = local.archive_sub.ack_deadline_seconds
  message_retention_duration = "${local.archive_sub.message_retention_seconds}s"

  push_config {
    push_endpoint = local.worker_archive_url
    oidc_token {
      service_account_email = google_service_account.push.email
      audience              = local.worker_push_url
    }
  }

  retry_policy {
    minimum_backoff = "${local.archive_sub.retry_policy.minimum_backoff_seconds}s"
    maximum_backoff = "${local.archive_sub.retry_policy.maximum_backoff_seconds}s"
  }
  expiration_policy {
    ttl = ""
  }
}

# Without these two grants dead-lettering silently does nothing: the Pub/Sub service agent
# must publish to the dead-letter topic and acknowledge on the source subscription.
resource "google_pubsub_topic_iam_member" "agent_publishes_dead_letters" {
  topic  = google_pubsub_topic.dead_letter.id
  role   = "roles/pubsub.publisher"
  member = local.pubsub_service_agent
}

resource "google_pubsub_subscription_iam_member" "agent_acks_push_subscription" {
  subscription = google_pubsub_subscription.worker_push.id
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_service_agent
}
