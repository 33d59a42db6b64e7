# Optional (static_egress = true): a fixed egress IP for Supabase projects with network
# restrictions. The worker's traffic leaves through a Serverless VPC connector and Cloud NAT.

resource "google_compute_network" "egress" {
  count                   = var.static_egress ? 1 : 0
  name                    = "hookpipe-egress"
  auto_create_subnetworks = false
}

# Egress only: nothing may connect in.
resource "google_compute_firewall" "deny_ingress" {
  count     = var.static_egress ? 1 : 0
  name      = "hookpipe-egress-deny-ingress"
  network   = google_compute_network.egress[0].name
  direction = "INGRESS"
  priority  = 1000
  deny {
    protocol = "all"
  }
  source_ranges = ["0.0.0.0/0"]
  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}

resource "google_vpc_access_connector" "egress" {
  count         = var.static_egress ? 1 : 0
  name          = "hookpipe-egress"
  region        = var.region
  network       = google_compute_network.egress[0].name
  ip_cidr_range = var.connector_cidr
  min_instances = 2
  max_instances = 3
}

resource "google_compute_router" "egress" {
  count   = var.static_egress ? 1 : 0
  name    = "hookpipe-egress"
  region  = var.region
  network = google_compute_network.egress[0].id
}

resource "google_compute_address" "egress" {
  count  = var.static_egress ? 1 : 0
  name   = "hookpipe-egress"
  region = var.region
}

resource "google_compute_router_nat" "egress" {
  count                              = var.static_egress ? 1 : 0
  name                               = "hookpipe-egress"
  router                             = google_compute_router.egress[0].name
  region                             = var.region
  nat_ip_allocate_option             = "MANUAL_ONLY"
  nat_ips                            = [google_compute_address.egress[0].self_link]
  source_subnetwork_ip_ranges_to_nat = "ALL_SUBNETWORKS_ALL_IP_RANGES"
  log_config {
    enable = true
    filter = "ERRORS_ONLY"
  }
}

output "egress_ip" {
  description = "Allow this address in Supabase's network restrictions (static_egress only)."
  value       = var.static_egress ? google_compute_address.egress[0].address : null
}

output "ingest_url" {
  value = google_cloud_run_v2_service.ingest.uri
}

output "worker_url" {
  value = google_cloud_run_v2_service.worker.uri
}

output "workload_identity_provider" {
  value = google_iam_workload_identity_pool_provider.github.name
}

output "ci_service_account" {
  value = google_service_account.ci.email
}

output "plan_service_account" {
  value = google_service_account.plan.email
}
