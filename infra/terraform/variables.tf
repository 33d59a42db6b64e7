variable "project_id" {
  description = "Google Cloud project hookpipe runs in."
  type        = string
}

variable "region" {
  description = "Region for Cloud Run, Artifact Registry and the optional connector."
  type        = string
  default     = "us-central1"
}

variable "ingest_image" {
  description = "Initial ingest image, by digest (deploy.yml ships later revisions)."
  type        = string
  validation {
    condition     = can(regex("@sha256:[0-9a-f]{64}$", var.ingest_image))
    error_message = "ingest_image must be pinned by digest (…@sha256:<64 hex>)."
  }
}

variable "worker_image" {
  description = "Initial worker image, by digest (deploy.yml ships later revisions)."
  type        = string
  validation {
    condition     = can(regex("@sha256:[0-9a-f]{64}$", var.worker_image))
    error_message = "worker_image must be pinned by digest (…@sha256:<64 hex>)."
  }
}

variable "github_owner" {
  description = "Owner (user or organization) of the GitHub repository allowed to deploy."
  type        = string
}

variable "github_repo" {
  description = "Name of the GitHub repository allowed to deploy through Workload Identity Federation."
  type        = string
}

variable "state_bucket" {
  description = "The GCS bucket holding Terraform's state (created at bootstrap); pull requests' plans read it."
  type        = string
}

variable "notification_channels" {
  description = "Monitoring notification channel ids (projects/…/notificationChannels/…) for every alert."
  type        = list(string)
  default     = []
}

variable "ingest_max_instances" {
  type    = number
  default = 20
}

variable "worker_max_instances" {
  description = "Keep worker_max_instances × HOOKPIPE_POOL_MAX_SIZE under the Supabase pooler's client limit (Micro 200)."
  type        = number
  default     = 40
}

variable "worker_pool_max_size" {
  type    = number
  default = 4
}

variable "static_egress" {
  description = "Route the worker's egress through a Serverless VPC connector and Cloud NAT with a static IP, for Supabase projects that restrict network access."
  type        = bool
  default     = false
}

variable "connector_cidr" {
  description = "A /28 for the Serverless VPC connector (only with static_egress)."
  type        = string
  default     = "10.8.0.0/28"
}

variable "ops_image" {
  description = "Initial operator CLI image (ops/Dockerfile, the reconcile job), by digest (deploy.yml ships later ones)."
  type        = string
  validation {
    condition     = can(regex("@sha256:[0-9a-f]{64}$", var.ops_image))
    error_message = "ops_image must be pinned by digest (…@sha256:<64 hex>)."
  }
}
