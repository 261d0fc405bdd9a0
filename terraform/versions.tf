# Terraform and provider versions.
#
# The provider is pinned to the 6.x line the offline schema check is generated from
# (cdktf-cdktf-provider-google 16.x describes hashicorp/google 6.50.0, see tools/tfcheck).
# Terraform >= 1.5 for `optional()` defaults, `check` blocks and validation that reads other
# variables' defaults consistently; < 2.0 because a major release may change the language.

terraform {
  required_version = ">= 1.5.0, < 2.0.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.50"
    }
  }
}

provider "google" {
  project = var.project
  region  = var.region

  # Every resource this configuration creates carries these labels, so billing reports and
  # `gcloud ... --filter=labels.app=fakenews-detector` find them.
  default_labels = merge({ app = "fakenews-detector", managed-by = "terraform" }, var.labels)
}
