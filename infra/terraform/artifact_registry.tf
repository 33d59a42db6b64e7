resource "google_artifact_registry_repository" "images" {
  # checkov:skip=CKV_GCP_84:Google-managed encryption; CMEK adds a KMS key to run for no threat this pipeline's images face

  repository_id = "hookpipe"
  location      = var.region
  format        = "DOCKER"
  description   = "hookpipe ingest and worker images"
  vulnerability_scanning_config {
    enablement_config = "INHERITED" # on with the Container Scanning API, enabled in project.tf
  }
}
