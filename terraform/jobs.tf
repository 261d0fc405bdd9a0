# Cloud Run v2 jobs. All four run the train job image (train_job/Dockerfile) by digest
# (var.image): it holds the whole project, so the monitor, the replay and the score job run the
# same code and SQL that was tested with the model, and pushing a new image changes nothing until
# it is deployed.

locals {
  gpu_limits = var.job_gpu_count > 0 ? { "nvidia.com/gpu" = tostring(var.job_gpu_count) } : {}
}

# `gcloud run jobs execute <name>` (make run-job) trains, exports, gates and publishes a bundle to
# the store; promotion moves models/production.json, which the function loads on its next cold start.
# Settings are train_job's FND_<FLAG> environment variables (flags in train_args still win).
resource "google_cloud_run_v2_job" "train" {
  name                = "${var.name_prefix}-train"
  location            = var.region
  deletion_protection = var.deletion_protection

  template {
    task_count  = 1
    parallelism = 1

    template {
      service_account = google_service_account.train.email
      timeout         = var.job_task_timeout
      # A retried task keeps CLOUD_RUN_EXECUTION, so train_job resumes the same run (runs/<id>/).
      max_retries = var.job_max_retries

      # GPU tasks run in one zone; without zonal redundancy they need no reserved spare capacity.
      gpu_zonal_redundancy_disabled = var.job_gpu_count > 0 ? true : null

      containers {
        image = var.image
        args  = var.train_args

        resources {
          limits = merge({ cpu = var.job_cpu, memory = var.job_memory }, local.gpu_limits)
        }

        dynamic "env" {
          for_each = {
            FND_STORE   = local.store_uri
            FND_PROFILE = var.train_profile
            FND_DEVICE  = var.job_gpu_count > 0 ? "cuda" : "cpu"
          }
          content {
            name  = env.key
            value = env.value
          }
        }
      }

      dynamic "node_selector" {
        for_each = var.job_gpu_count > 0 ? [var.job_gpu_type] : []
        content {
          accelerator = node_selector.value
        }
      }
    }
  }

  lifecycle {
    precondition {
      condition     = var.image != null
      error_message = "image: the jobs need the train job image by digest (make tf-plan looks it up; run make image first)."
    }
  }

  depends_on = [google_project_service.apis]
}

# The scheduled monitor: loads the production baseline, runs the drift queries over the prediction
# log and exits 3 above the PSI threshold; with --retrain it first runs RETRAIN_COMMAND, which
# executes the train job above (monitoring/cloud_run_execute.py) rather than training in this small task.
resource "google_cloud_run_v2_job" "monitor" {
  name                = "${var.name_prefix}-monitor"
  location            = var.region
  deletion_protection = var.deletion_protection

  template {
    task_count = 1

    template {
      service_account = google_service_account.monitor.email
      timeout         = "900s"
      max_retries     = 0 # a retried drift alarm would start a second retrain

      containers {
        image   = var.image
        command = ["python", "-m", "monitoring"]
        args    = var.monitor_args

        resources {
          limits = { cpu = "1", memory = "2Gi" }
        }

        # PREDICTION_LOG_ROWS: queries read every log row, through the view over the stdout
        # lines when the function logs there (prediction_log_sink.tf).
        dynamic "env" {
          for_each = {
            PREDICTION_LOG      = local.prediction_log
            PREDICTION_LOG_ROWS = local.prediction_log_rows
            STORE               = local.store_uri
            RETRAIN_COMMAND     = "python -m monitoring.cloud_run_execute ${google_cloud_run_v2_job.train.id}"
          }
          content {
            name  = env.key
            value = env.value
          }
        }
      }
    }
  }

  lifecycle {
    precondition {
      condition     = var.image != null
      error_message = "image: the jobs need the train job image by digest (make tf-plan looks it up; run make image first)."
    }
  }

  depends_on = [google_project_service.apis]
}

# Loads dead-letter files (rows BigQuery refused or could not take in time) into the prediction
# log, each row once; replayed files move to dead_letter/replayed/. Scheduled in scheduler.tf.
resource "google_cloud_run_v2_job" "replay" {
  name                = "${var.name_prefix}-replay"
  location            = var.region
  deletion_protection = var.deletion_protection

  template {
    task_count = 1

    template {
      service_account = google_service_account.replay.email
      timeout         = "900s"
      # A failed execution stays visible; the next scheduled run tries the same files again.
      max_retries = 0

      containers {
        image   = var.image
        command = ["python", "-m", "monitoring"]
        args    = ["replay"]

        resources {
          limits = { cpu = "1", memory = "1Gi" }
        }

        dynamic "env" {
          for_each = {
            PREDICTION_LOG  = local.prediction_log
            DEAD_LETTER_URI = local.dead_letter_uri
          }
          content {
            name  = env.key
            value = env.value
          }
        }
      }
    }
  }

  lifecycle {
    precondition {
      condition     = var.image != null
      error_message = "image: the jobs need the train job image by digest (make tf-plan looks it up; run make image first)."
    }
  }

  depends_on = [google_project_service.apis]
}

# Batch scoring: `gcloud run jobs execute <prefix>-score --tasks N` (make run-score). Each task
# scores its share of the input (CLOUD_RUN_TASK_INDEX of CLOUD_RUN_TASK_COUNT) with the production
# bundle, writes one Parquet shard under scores/ and loads it into the scores table with a load
# job; a retried task redoes exactly its share and never loads a shard twice (docs/batch-scoring.md).
resource "google_cloud_run_v2_job" "score" {
  name                = "${var.name_prefix}-score"
  location            = var.region
  deletion_protection = var.deletion_protection

  template {
    task_count  = var.score_task_count
    parallelism = var.score_parallelism

    template {
      service_account = google_service_account.score.email
      timeout         = var.score_task_timeout
      max_retries     = var.score_max_retries

      containers {
        image   = var.image
        command = ["python", "-m", "score_job"]
        args    = var.score_args

        resources {
          limits = { cpu = var.score_cpu, memory = var.score_memory }
        }

        # FND_SCORE_THREADS is left to the job: it sizes onnxruntime to the task's CPU quota.
        dynamic "env" {
          for_each = {
            FND_SCORE_STORE        = local.store_uri
            FND_SCORE_INPUT        = local.score_input
            FND_SCORE_TEXT_COLUMNS = var.score_text_columns
            FND_SCORE_OUTPUT       = "${local.store_uri}/scores"
            FND_SCORE_TABLE        = "bq://${var.project}.${local.dataset_id}.${local.scores_table}"
          }
          content {
            name  = env.key
            value = env.value
          }
        }
      }
    }
  }

  lifecycle {
    precondition {
      condition     = var.image != null
      error_message = "image: the jobs need the train job image by digest (make tf-plan looks it up; run make image first)."
    }
  }

  depends_on = [google_project_service.apis]
}
