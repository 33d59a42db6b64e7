resource "google_project_service" "apis" {
  for_each = toset([
    "run.googleapis.com", "pubsub.googleapis.com", "bigquery.googleapis.com",
    "bigquerystorage.googleapis.com",
    "secretmanager.googleapis.com", "artifactregistry.googleapis.com",
    "containerscanning.googleapis.com", "monitoring.googleapis.com", "logging.googleapis.com",
    "iamcredentials.googleapis.com", "vpcaccess.googleapis.com", "compute.googleapis.com",
    "storage.googleapis.com", "cloudscheduler.googleapis.com",
  ])
  service            = each.value
  disable_on_destroy = false
}
