# Alerts for silent loss at a sender that never retries (LeadProsper), and for the spool.
# Runbooks: docs/operations.md, "Alerts for senders and the spool".

locals {
  # Per source, its `quiet_alert_minutes` from infra/sources.toml (Terraform reads no TOML;
  # tests/unit/test_infra.py keeps this map equal to the file). Empty: no quiet-period alerts.
  source_quiet_minutes = {}
}

# Every webhook answer, by source, status and outcome (accepted, spooled, rejected, unavailable),
# from ingest's canonical request line.
resource "google_logging_metric" "ingest_webhooks" {
  name   = "hookpipe/ingest_webhooks"
  filter = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${google_cloud_run_v2_service.ingest.name}\" AND jsonPayload.event=\"webhook\""
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    labels {
      key        = "source"
      value_type = "STRING"
    }
    labels {
      key        = "status"
      value_type = "STRING"
    }
    labels {
      key        = "outcome"
      value_type = "STRING"
    }
  }
  label_extractors = {
    source  = "EXTRACT(jsonPayload.source)"
    status  = "EXTRACT(httpRequest.status)"
    outcome = "EXTRACT(jsonPayload.outcome)"
  }
}

# The oldest spooled object's age, from each drainer pass that leaves anything behind.
resource "google_logging_metric" "spool_oldest_age" {
  name   = "hookpipe/spool_oldest_age_seconds"
  filter = "resource.type=\"cloud_run_job\" AND resource.labels.job_name=\"${google_cloud_run_v2_job.spool_drainer.name}\" AND jsonPayload.event=\"spool_drain\""
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "DISTRIBUTION"
    unit        = "s"
  }
  value_extractor = "EXTRACT(jsonPayload.oldest_age_seconds)"
  bucket_options {
    exponential_buckets {
      num_finite_buckets = 16
      growth_factor      = 2
      scale              = 1
    }
  }
}

# (a) A rotated or mistyped token: most of a source's webhooks refused 401/403 for 5 minutes.
resource "google_monitoring_alert_policy" "sender_unauthenticated" {
  display_name = "hookpipe ingest: a source's webhooks refused 401/403 for 5 min"
  combiner     = "OR"
  conditions {
    display_name = "401/403 over half of a source's answers, for 5 min"
    condition_monitoring_query_language {
      duration = "300s"
      query    = <<-MQL
        fetch cloud_run_revision
        | metric 'logging.googleapis.com/user/${google_logging_metric.ingest_webhooks.name}'
        | filter resource.service_name == '${google_cloud_run_v2_service.ingest.name}'
        | align delta(5m)
        | every 1m
        | group_by [metric.source],
            [refused: sum(if(metric.status == '401' || metric.status == '403', val(), 0)),
             total: sum(val())]
        | value [ratio: cast_double(refused) / cast_double(total)]
        | condition ratio > 0.5
      MQL
    }
  }
  notification_channels = var.notification_channels
  documentation {
    content = "A sender's webhooks are refused as unauthenticated. A sender that never retries (LeadProsper) loses each one. Follow 'Runbook: webhooks from a source are refused 401/403'. ${local.runbook}"
  }
}

# (b) A source that went quiet: no webhook accepted for its configured period.
resource "google_monitoring_alert_policy" "source_quiet" {
  for_each     = local.source_quiet_minutes
  display_name = "hookpipe ingest: no webhook accepted from ${each.key} for ${each.value} min"
  combiner     = "OR"
  conditions {
    display_name = "no 202 for ${each.key} in ${each.value} min"
    condition_absent {
      filter   = "resource.type = \"cloud_run_revision\" AND metric.type = \"logging.googleapis.com/user/${google_logging_metric.ingest_webhooks.name}\" AND metric.labels.source = \"${each.key}\" AND metric.labels.status = \"202\""
      duration = "${each.value * 60}s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }
  notification_channels = var.notification_channels
  documentation {
    content = "No webhook from ${each.key} was accepted for ${each.value} minutes: its trigger may be switched off or pointed elsewhere. Follow 'Runbook: a source went quiet'. ${local.runbook}"
  }
}

# (c) The spool holds an event older than 10 minutes, or the drainer is failing.
resource "google_monitoring_alert_policy" "spool_not_drained" {
  display_name = "hookpipe: spool not drained for 10 min"
  combiner     = "OR"
  conditions {
    display_name = "oldest spooled event older than 600 s"
    condition_threshold {
      filter          = "resource.type = \"cloud_run_job\" AND metric.type = \"logging.googleapis.com/user/${google_logging_metric.spool_oldest_age.name}\""
      comparison      = "COMPARISON_GT"
      threshold_value = 600
      duration        = "0s"
      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_PERCENTILE_99"
        cross_series_reducer = "REDUCE_MAX"
      }
    }
  }
  conditions {
    display_name = "drainer executions failing for 10 min"
    condition_threshold {
      filter          = "resource.type = \"cloud_run_job\" AND resource.labels.job_name = \"${google_cloud_run_v2_job.spool_drainer.name}\" AND metric.type = \"run.googleapis.com/job/completed_execution_count\" AND metric.labels.result = \"failed\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "600s"
      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }
  notification_channels = var.notification_channels
  documentation {
    content = "Webhooks kept in the spool are not reaching Pub/Sub. They are safe in the bucket; follow 'Runbook: the spool is not draining'. ${local.runbook}"
  }
}

# The dead-letter archive is behind: its subscription retries until archived, within 7 days.
resource "google_monitoring_alert_policy" "archive_behind" {
  display_name = "hookpipe: dead-letter archive behind by more than 1 h"
  combiner     = "OR"
  conditions {
    display_name = "oldest unarchived dead letter older than 3600 s"
    condition_threshold {
      filter          = "resource.type = \"pubsub_subscription\" AND resource.labels.subscription_id = \"${google_pubsub_subscription.dead_letter_archive.name}\" AND metric.type = \"pubsub.googleapis.com/subscription/oldest_unacked_message_age\""
      comparison      = "COMPARISON_GT"
      threshold_value = 3600
      duration        = "300s"
      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }
  notification_channels = var.notification_channels
  documentation {
    content = "Dead letters are not reaching the archive tables; after 7 days Pub/Sub drops them. Follow 'Runbook: the dead-letter archive is behind'. ${local.runbook}"
  }
}
