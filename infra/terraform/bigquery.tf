resource "google_bigquery_dataset" "hookpipe" {
  # checkov:skip=CKV_GCP_81:Google-managed encryption by default; set default_encryption_configuration here if your data policy requires CMEK
  dataset_id  = local.bq_tables.dataset
  location    = "US"
  description = "hookpipe webhook events"
}

resource "google_bigquery_table" "raw_events" {
  # checkov:skip=CKV_GCP_80:Google-managed encryption, as for the dataset (CKV_GCP_81)
  dataset_id          = google_bigquery_dataset.hookpipe.dataset_id
  table_id            = local.bq_tables.raw_table.name
  schema              = local.raw_schema
  clustering          = local.bq_tables.raw_table.clustering
  deletion_protection = true
  time_partitioning {
    type  = local.bq_tables.raw_table.time_partitioning.type
    field = local.bq_tables.raw_table.time_partitioning.field
  }
}

# The dead-letter archive (docs/delivery.md): written by the worker's archive endpoint.
resource "google_bigquery_table" "dead_letters" {
  # checkov:skip=CKV_GCP_80:Google-managed encryption, as for the dataset (CKV_GCP_81)
  dataset_id          = google_bigquery_dataset.hookpipe.dataset_id
  table_id            = local.bq_tables.dead_letters_table.name
  schema              = file("${path.module}/../bigquery/${local.bq_tables.dead_letters_table.schema_file}")
  clustering          = local.bq_tables.dead_letters_table.clustering
  deletion_protection = true
  time_partitioning {
    type  = local.bq_tables.dead_letters_table.time_partitioning.type
    field = local.bq_tables.dead_letters_table.time_partitioning.field
  }
}

resource "google_bigquery_table" "events_view" {
  # checkov:skip=CKV_GCP_80:a view stores no data to encrypt
  dataset_id          = google_bigquery_dataset.hookpipe.dataset_id
  table_id            = local.bq_tables.dedup_view.name
  deletion_protection = true
  view {
    query          = replace(replace(local.bq_tables.dedup_view.query, "{project}", var.project_id), "{dataset}", google_bigquery_dataset.hookpipe.dataset_id)
    use_legacy_sql = false
  }
  depends_on = [google_bigquery_table.raw_events]
}
