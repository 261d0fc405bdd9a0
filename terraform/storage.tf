# The artifact store: gs://<bucket>/models/<version>/..., models/production.json, runs/<run>/...
# (checkpoints), teacher_logits/ (distillation cache), inputs/ (gs:// training inputs),
# dead_letter/ (prediction rows BigQuery refused), sources/ (function zips), scores/ (batch
# scoring shards; its inputs go under inputs/). Each workload may touch only its prefixes
# (conditions in iam.tf).

resource "google_storage_bucket" "artifacts" {
  #checkov:skip=CKV_GCP_62:Usage/storage access logs need a second log bucket; Data Access audit logs for storage.googleapis.com (DATA_READ and DATA_WRITE, google_project_iam_audit_config.data_access in iam.tf) record every object read and write instead.
  name     = local.bucket_name
  location = var.region

  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  # Versioning keeps the previous models/production.json and bundle files, so a bad promotion or
  # an accidental delete can be undone (rollback = copy the old pointer generation back).
  versioning {
    enabled = true
  }

  # Training checkpoints and logs under runs/ are only useful for a while.
  lifecycle_rule {
    condition {
      age            = var.checkpoint_retention_days
      matches_prefix = ["runs/"]
    }
    action {
      type = "Delete"
    }
  }

  # Old generations of overwritten or deleted objects (versioning) do not pile up forever.
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.noncurrent_version_retention_days
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  # Dead-letter files (replayed/ and rejected-* included) hold the same rows as the prediction log,
  # texts too with log_text on: they go when the log's partitions expire. A file's age counts from
  # its spill (a replayed file's from its move to replayed/, within the hour); the deleted
  # generation stays noncurrent_version_retention_days more, like every object here.
  dynamic "lifecycle_rule" {
    for_each = var.prediction_log_partition_expiration_days == null ? [] : [var.prediction_log_partition_expiration_days]
    content {
      condition {
        age            = lifecycle_rule.value
        matches_prefix = ["dead_letter/"]
      }
      action {
        type = "Delete"
      }
    }
  }

  # Function source zips are content-addressed (sources/predict-<md5>.zip); old ones are dead weight.
  lifecycle_rule {
    condition {
      age            = 30
      matches_prefix = ["sources/"]
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.apis]
}
