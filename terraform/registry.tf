# Docker repositories: one for the jobs image (jobs_image/Dockerfile, pushed by `make image` as
# train-job, run by the jobs by digest), one for the images Cloud Build makes from the function
# source. The function build account may push to the second only, so it cannot replace an image
# the jobs run.

resource "google_artifact_registry_repository" "images" {
  #checkov:skip=CKV_GCP_84:Images hold no secrets: a public base image, the project's open-source code and the public training sets under data/; Google-managed encryption is enough and a CMEK key ring would outlive `terraform destroy`.
  location      = var.region
  repository_id = var.name_prefix
  description   = "fakenews-detector train job image (also run by the monitor and replay jobs)"
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

resource "google_artifact_registry_repository" "function_builds" {
  #checkov:skip=CKV_GCP_84:Function images hold the function's open-source code and its public dependencies, no secrets (the model is read from the artifact store at run time); Google-managed encryption is enough and a CMEK key ring would outlive `terraform destroy`.
  location      = var.region
  repository_id = "${var.name_prefix}-functions"
  description   = "fakenews-detector prediction function images built by Cloud Build"
  format        = "DOCKER"

  # Each deploy builds a new image; the recent ones stay for a rollback of the function revision.
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
