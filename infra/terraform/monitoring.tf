# Alerts point to the runbooks in docs/operations.md and docs/deploy.md ("Alerts").

locals {
  services = {
    ingest = google_cloud_run_v2_service.ingest.name
    worker = google_cloud_run_v2_service.worker.name
  }
  runbook = "https://github.com/${var.github_owner}/${var.github_repo}/blob/main/docs/operations.md"
}

resource "google_monitoring_alert_policy" "error_ratio" {
  for_each     = local.services
  display_name = "hookpipe ${each.key}: 5xx ratio > 1%"
  combiner     = "OR"
  conditions {
    display_name = "5xx / all requests > 1% for 5 min"
    condition_monitoring_query_language {
      duration = "300s"
      query    = <<-MQL
        fetch cloud_run_revision
        | metric 'run.googleapis.com/request_count'
        | filter resource.service_name == '${each.value}'
        | align rate(1m)
        | group_by [], [errors: sum(if(metric.response_code_class == '5xx', val(), 0)), total: sum(val())]
        | value [ratio: errors / total]
        | condition ratio > 0.01
      MQL
    }
  }
  notification_channels = var.notification_channels
  documentation {
    content = "5xx from ${each.key}. Ingest: Pub/Sub is failing publishes (senders get 503 and retry). Worker: sinks failing; messages are being retried and may dead-letter. Runbook: ${local.runbook}"
  }
}

resource "google_monitoring_alert_policy" "latency_p95" {
  for_each     = local.services
  display_name = "hookpipe ${each.key}: p95 latency > 2 s"
  combiner     = "OR"
  conditions {
    display_name = "p95 request latency > 2 s for 5 min"
    condition_threshold {
      filter          = "resource.type = \"cloud_run_revision\" AND resource.labels.service_name = \"${each.value}\" AND metric.type = \"run.googleapis.com/request_latencies\""
      comparison      = "COMPARISON_GT"
      threshold_value = 2000
      duration        = "300s"
      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_PERCENTILE_95"
        cross_series_reducer = "REDUCE_MAX"
      }
    }
  }
  notification_channels = var.notification_channels
  documentation {
    content = "Slow ${each.key}. Check the sinks' latency (worker) or Pub/Sub publish latency (ingest). Runbook: ${local.runbook}"
  }
}

resource "google_monitoring_alert_policy" "instances" {
  for_each     = local.services
  display_name = "hookpipe ${each.key}: more than 50 instances"
  combiner     = "OR"
  conditions {
    display_name = "instance count > 50"
    condition_threshold {
      filter          = "resource.type = \"cloud_run_revision\" AND resource.labels.service_name = \"${each.value}\" AND metric.type = \"run.googleapis.com/container/instance_count\""
      comparison      = "COMPARISON_GT"
      threshold_value = 50
      duration        = "300s"
      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_MAX"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }
  notification_channels = var.notification_channels
  documentation {
    content = "Unusual load or slow requests piling up. Worker instances × pool size must stay under the Supabase pooler limit (docs/delivery.md). Runbook: ${local.runbook}"
  }
}

resource "google_monitoring_alert_policy" "dead_letters" {
  display_name = "hookpipe: dead-letter subscription has undelivered messages"
  combiner     = "OR"
  conditions {
    display_name = "undelivered dead letters > 0"
    condition_threshold {
      filter          = "resource.type = \"pubsub_subscription\" AND resource.labels.subscription_id = \"${google_pubsub_subscription.dead_letter_pull.name}\" AND metric.type = \"pubsub.googleapis.com/subscription/num_undelivered_messages\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "60s"
      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }
  notification_channels = var.notification_channels
  documentation {
    content = "Webhooks were dead-lettered. Follow 'Runbook: dead-letter subscription has undelivered messages': hookpipe dlq stats → peek → fix → replay --dry-run → replay → verify. ${local.runbook}"
  }
}

resource "google_monitoring_alert_policy" "push_backlog_age" {
  display_name = "hookpipe: oldest unacked push message > 10 min"
  combiner     = "OR"
  conditions {
    display_name = "oldest unacked message age > 600 s"
    condition_threshold {
      filter          = "resource.type = \"pubsub_subscription\" AND resource.labels.subscription_id = \"${google_pubsub_subscription.worker_push.name}\" AND metric.type = \"pubsub.googleapis.com/subscription/oldest_unacked_message_age\""
      comparison      = "COMPARISON_GT"
      threshold_value = 600
      duration        = "120s"
      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }
  notification_channels = var.notification_channels
  documentation {
    content = "The worker is not keeping up or is failing every push (sinks down, auth misconfigured). Check the worker's logs and /readyz. ${local.runbook}"
  }
}

# Worker batch sizes from its canonical batch log lines.
resource "google_logging_metric" "worker_batch_rows" {
  name   = "hookpipe/worker_batch_rows"
  filter = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${google_cloud_run_v2_service.worker.name}\" AND jsonPayload.event=\"batch\""
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "DISTRIBUTION"
    unit        = "1"
  }
  value_extractor = "EXTRACT(jsonPayload.batch_rows)"
  bucket_options {
    exponential_buckets {
      num_finite_buckets = 12
      growth_factor      = 2
      scale              = 1
    }
  }
}

resource "google_logging_metric" "bigquery_insert_errors" {
  name   = "hookpipe/bigquery_insert_errors"
  filter = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${google_cloud_run_v2_service.worker.name}\" AND jsonPayload.event=\"push\" AND jsonPayload.reason=~\"bigquery\""
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
  }
}

# Batches the worker tried again because Postgres was unreachable or restarting
# (HOOKPIPE_POSTGRES_RETRY_SECONDS): Supabase blips that cost latency, not redeliveries.
resource "google_logging_metric" "postgres_batch_retries" {
  name   = "hookpipe/postgres_batch_retries"
  filter = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${google_cloud_run_v2_service.worker.name}\" AND jsonPayload.event=\"batch_retry\""
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
  }
}

resource "google_monitoring_dashboard" "hookpipe" {
  dashboard_json = jsonencode({
    displayName = "hookpipe"
    gridLayout = {
      columns = 2
      widgets = [
        for widget in [
          ["Requests by service and status class", "metric.type=\"run.googleapis.com/request_count\" resource.type=\"cloud_run_revision\"", "ALIGN_RATE", ["resource.label.service_name", "metric.label.response_code_class"]],
          ["p95 latency (ms)", "metric.type=\"run.googleapis.com/request_latencies\" resource.type=\"cloud_run_revision\"", "ALIGN_PERCENTILE_95", ["resource.label.service_name"]],
          ["Instances", "metric.type=\"run.googleapis.com/container/instance_count\" resource.type=\"cloud_run_revision\"", "ALIGN_MAX", ["resource.label.service_name"]],
          ["Push backlog (undelivered)", "metric.type=\"pubsub.googleapis.com/subscription/num_undelivered_messages\" resource.type=\"pubsub_subscription\" resource.label.subscription_id=\"${google_pubsub_subscription.worker_push.name}\"", "ALIGN_MAX", []],
          ["Dead-letter depth", "metric.type=\"pubsub.googleapis.com/subscription/num_undelivered_messages\" resource.type=\"pubsub_subscription\" resource.label.subscription_id=\"${google_pubsub_subscription.dead_letter_pull.name}\"", "ALIGN_MAX", []],
          ["BigQuery insert errors", "metric.type=\"logging.googleapis.com/user/${google_logging_metric.bigquery_insert_errors.name}\" resource.type=\"cloud_run_revision\"", "ALIGN_RATE", []],
          ["Worker batch size (p50)", "metric.type=\"logging.googleapis.com/user/${google_logging_metric.worker_batch_rows.name}\" resource.type=\"cloud_run_revision\"", "ALIGN_PERCENTILE_50", []],
          ["Postgres batch retries", "metric.type=\"logging.googleapis.com/user/${google_logging_metric.postgres_batch_retries.name}\" resource.type=\"cloud_run_revision\"", "ALIGN_RATE", []],
          ] : {
          title = widget[0]
          xyChart = {
            dataSets = [{
              timeSeriesQuery = {
                timeSeriesFilter = {
                  filter      = widget[1]
                  aggregation = { alignmentPeriod = "60s", perSeriesAligner = widget[2], crossSeriesReducer = "REDUCE_SUM", groupByFields = widget[3] }
                }
              }
            }]
          }
        }
      ]
    }
  })
}
