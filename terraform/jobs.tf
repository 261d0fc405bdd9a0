# Cloud Run v2 jobs. All four run the one jobs image (jobs_image/Dockerfile) by digest
# (var.image): it holds the whole project, so the monitor, the replay and the score job run the
# same code and SQL that was tested with the model, and pushing a new image changes nothing until
# it is deployed. Each job runs as the service account of the same key (iam.tf).

locals {
  gpu_limits = var.job_gpu_count > 0 ? { "nvidia.com/gpu" = tostring(var.job_gpu_count) } : {}

  # The train job's id as the provider writes it: the monitor's environment cannot refer to
  # google_cloud_run_v2_job.jobs["train"].id, an instance of the resource it belongs to itself.
  train_job_id = "projects/${var.project}/locations/${var.region}/jobs/${var.name_prefix}-train"

  # Every setting a job has; null leaves it to Cloud Run's default, as an omitted argument does.
  jobs = {
    # `gcloud run jobs execute <name>` (make run-job) trains, exports, gates and publishes a bundle
    # to the store; promotion moves models/production.json, which the function loads on its next
    # cold start. Settings are train_job's FND_<FLAG> environment variables (flags in train_args
    # still win). A retried task keeps CLOUD_RUN_EXECUTION, so train_job resumes the same run
    # (runs/<id>/).
    train = {
      task_count  = 1
      parallelism = 1
      timeout     = var.job_task_timeout
      max_retries = var.job_max_retries
      command     = null
      args        = var.train_args
      limits      = merge({ cpu = var.job_cpu, memory = var.job_memory }, local.gpu_limits)
      env = {
        FND_STORE   = local.store_uri
        FND_PROFILE = var.train_profile
        FND_DEVICE  = var.job_gpu_count > 0 ? "cuda" : "cpu"
      }
      # GPU tasks run in one zone; without zonal redundancy they need no reserved spare capacity.
      gpu_zonal_redundancy_disabled = var.job_gpu_count > 0 ? true : null
      accelerators                  = var.job_gpu_count > 0 ? [var.job_gpu_type] : []
    }

    # The scheduled monitor: loads the production baseline, runs the drift queries over the
    # prediction log and exits 3 above the PSI threshold; with --retrain it first runs
    # RETRAIN_COMMAND, which executes the train job (monitoring/cloud_run_execute.py) rather than
    # training in this small task. No retry: a retried drift alarm would start a second retrain.
    # PREDICTION_LOG_ROWS: queries read every log row, through the view over the stdout lines
    # when the function logs there (prediction_log_sink.tf).
    monitor = {
      task_count  = 1
      parallelism = null
      timeout     = "900s"
      max_retries = 0
      command     = ["python", "-m", "monitoring"]
      args        = var.monitor_args
      limits      = { cpu = "1", memory = "2Gi" }
      env = {
        PREDICTION_LOG      = local.prediction_log
        PREDICTION_LOG_ROWS = local.prediction_log_rows
        STORE               = local.store_uri
        RETRAIN_COMMAND     = "python -m monitoring.cloud_run_execute ${local.train_job_id}"
      }
      gpu_zonal_redundancy_disabled = null
      accelerators                  = []
    }

    # Loads dead-letter files (rows BigQuery refused or could not take in time) into the
    # prediction log, each row once; replayed files move to dead_letter/replayed/. Scheduled in
    # scheduler.tf. No retry: a failed execution stays visible, and the next scheduled run tries
    # the same files again.
    replay = {
      task_count  = 1
      parallelism = null
      timeout     = "900s"
      max_retries = 0
      command     = ["python", "-m", "monitoring"]
      args        = ["replay"]
      limits      = { cpu = "1", memory = "1Gi" }
      env = {
        PREDICTION_LOG  = local.prediction_log
        DEAD_LETTER_URI = local.dead_letter_uri
      }
      gpu_zonal_redundancy_disabled = null
      accelerators                  = []
    }

    # Batch scoring: `gcloud run jobs execute <prefix>-score --tasks N` (make run-score). Each
    # task scores its share of the input (CLOUD_RUN_TASK_INDEX of CLOUD_RUN_TASK_COUNT) with the
    # production bundle, writes one Parquet shard under scores/ and loads it into the scores table
    # with a load job; a retried task redoes exactly its share and never loads a shard twice
    # (docs/batch-scoring.md). FND_SCORE_THREADS is left to the job: it sizes onnxruntime to the
    # task's CPU quota.
    score = {
      task_count  = var.score_task_count
      parallelism = var.score_parallelism
      timeout     = var.score_task_timeout
      max_retries = var.score_max_retries
      command     = ["python", "-m", "score_job"]
      args        = var.score_args
      limits      = { cpu = var.score_cpu, memory = var.score_memory }
      env = {
        FND_SCORE_STORE        = local.store_uri
        FND_SCORE_INPUT        = local.score_input
        FND_SCORE_TEXT_COLUMNS = var.score_text_columns
        FND_SCORE_OUTPUT       = "${local.store_uri}/scores"
        FND_SCORE_TABLE        = "bq://${var.project}.${local.dataset_id}.${local.scores_table}"
      }
      gpu_zonal_redundancy_disabled = null
      accelerators                  = []
    }
  }
}

resource "google_cloud_run_v2_job" "jobs" {
  for_each = local.jobs

  name                = "${var.name_prefix}-${each.key}"
  location            = var.region
  deletion_protection = var.deletion_protection

  template {
    task_count  = each.value.task_count
    parallelism = each.value.parallelism

    template {
      service_account               = google_service_account.accounts[each.key].email
      timeout                       = each.value.timeout
      max_retries                   = each.value.max_retries
      gpu_zonal_redundancy_disabled = each.value.gpu_zonal_redundancy_disabled

      containers {
        image   = var.image
        command = each.value.command
        args    = each.value.args

        resources {
          limits = each.value.limits
        }

        dynamic "env" {
          for_each = each.value.env
          content {
            name  = env.key
            value = env.value
          }
        }
      }

      dynamic "node_selector" {
        for_each = each.value.accelerators
        content {
          accelerator = node_selector.value
        }
      }
    }
  }

  lifecycle {
    precondition {
      condition     = var.image != null
      error_message = "image: the jobs need the jobs image by digest (make tf-plan looks it up; run make image first)."
    }
  }

  depends_on = [google_project_service.apis]
}
