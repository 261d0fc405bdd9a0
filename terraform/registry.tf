# Docker repository for the train job image (also used as the function's build repository, so the
# build service account needs write access to one repository only).

resource "google_artifact_registry_repository" "images" {
  #checkov:skip=CKV_GCP_84:Images hold no secrets or data (public base image + open-source code); Google-managed encryption is enough and a CMEK key ring would outlive `terraform destroy`.
  location      = var.region
  repository_id = var.name_prefix
  description   = "fakenews-detector container images (train job, function builds)"
  format        = "DOCKER"

  # Keep the 10 newest train-job images; untagged layers of older pushes are removed.
  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = 10
    }
  }
  cleanup_policies {
    id     = "delete-old-untagged"
    action = "DELETE"
    condition {
      tag_state  = "UNTAGGED"
      older_than = "2592000s"
    }
  }

  depends_on = [google_project_service.apis]
}
