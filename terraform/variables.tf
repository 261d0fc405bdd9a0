# Inputs. Only `project` has no default; terraform.tfvars.example shows a typical file.

variable "project" {
  description = "Google Cloud project id that holds everything."
  type        = string
}

variable "region" {
  description = "Region for the bucket, the registry, the jobs, the function and the scheduler."
  type        = string
  default     = "europe-west1"
}

variable "name_prefix" {
  description = "Prefix of every resource name (service accounts, jobs, function, dataset)."
  type        = string
  default     = "fakenews"

  validation {
    # Service account ids are 6-30 characters; the longest suffix used is "-scheduler" (10).
    condition     = can(regex("^[a-z][a-z0-9-]{2,18}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix: 4-20 lowercase letters, digits or dashes, starting with a letter."
  }
}

variable "labels" {
  description = "Extra labels added to every resource."
  type        = map(string)
  default     = {}
}

variable "enable_apis" {
  description = "Enable the Google APIs this configuration needs (needs serviceusage.services.enable)."
  type        = bool
  default     = true
}

variable "deletion_protection" {
  description = "Protect the prediction log table and the jobs from `terraform destroy`."
  type        = bool
  default     = true
}

# ---------------------------------------------------------------- artifact store

variable "bucket_name" {
  description = "Artifact store bucket (models, runs, dead letters, function sources). Default: <project>-<name_prefix>-artifacts."
  type        = string
  default     = null
}

variable "checkpoint_retention_days" {
  description = "Objects under runs/ (training checkpoints and logs) are deleted after this many days. Promoted bundles live under models/ and are kept."
  type        = number
  default     = 30
}

variable "noncurrent_version_retention_days" {
  description = "Overwritten or deleted object versions (e.g. an earlier models/production.json) are kept this long, for rollback."
  type        = number
  default     = 90
}

# ---------------------------------------------------------------- BigQuery

variable "dataset_id" {
  description = "BigQuery dataset for the prediction log, the baselines and the dashboard views. Default: <name_prefix with _>_monitoring."
  type        = string
  default     = null
}

variable "bigquery_location" {
  description = "BigQuery location. Default: the region."
  type        = string
  default     = null
}

variable "dataset_reader_groups" {
  description = "Google groups (emails) that may read the monitoring dataset: the dashboard views and the log they read (raw texts too when log_text is on). Project Viewers and Editors get no access to its data."
  type        = list(string)
  default     = []
}

variable "prediction_log_partition_expiration_days" {
  description = "Days a day-partition of the prediction log is kept; null keeps them forever."
  type        = number
  default     = 400
}

# ---------------------------------------------------------------- train job (Cloud Run v2 job)

variable "image" {
  description = "Image of the train, monitor, replay and score jobs (jobs_image/Dockerfile), by digest: <region>-docker.pkg.dev/<project>/<name_prefix>/train-job@sha256:<64 hex>. `make tf-plan` looks up the digest of the image `make image` pushed. Null only for the first, targeted apply (make tf-registry)."
  type        = string
  default     = null

  validation {
    # A tag can be moved to another image by anyone who may push; a digest names one image.
    condition     = var.image == null || can(regex("^[a-z0-9][a-z0-9.-]*(:[0-9]+)?(/[a-z0-9._-]+)+@sha256:[0-9a-f]{64}$", var.image))
    error_message = "image: give the image by digest, <registry>/<path>@sha256:<64 hex digits>, not by tag."
  }
}

variable "job_cpu" {
  description = "vCPUs of a train job task (Cloud Run: 1, 2, 4, 6 or 8)."
  type        = string
  default     = "4"
}

variable "job_memory" {
  description = "Memory of a train job task."
  type        = string
  default     = "16Gi"
}

variable "job_gpu_count" {
  description = "GPUs per train job task (0 = CPU only; 1 needs the CUDA image, make image IMAGE_VARIANT=cuda, and a region with Cloud Run GPUs)."
  type        = number
  default     = 0

  validation {
    condition     = contains([0, 1], var.job_gpu_count)
    error_message = "job_gpu_count: Cloud Run jobs take 0 or 1 GPU per task."
  }
}

variable "job_gpu_type" {
  description = "Accelerator when job_gpu_count = 1."
  type        = string
  default     = "nvidia-l4"
}

variable "job_task_timeout" {
  description = "Longest a train job task may run (duration, e.g. 3600s)."
  type        = string
  default     = "7200s"
}

variable "job_max_retries" {
  description = "Retries of a failed train job task."
  type        = number
  default     = 1
}

variable "train_profile" {
  description = "train_job profile (FND_PROFILE): full = every training row, early stopping; quick = a smoke run."
  type        = string
  default     = "full"
}

variable "train_args" {
  description = "Extra arguments of `python -m train_job` (e.g. [\"--epochs\", \"3\"])."
  type        = list(string)
  default     = []
}

# ---------------------------------------------------------------- monitor (Cloud Run v2 job + Cloud Scheduler)

variable "monitor_args" {
  description = "Arguments of `python -m monitoring` in the scheduled monitor job. --retrain executes the train job when PSI is above the threshold."
  type        = list(string)
  default     = ["monitor", "--window", "24h", "--retrain"]
}

variable "schedule" {
  description = "When the monitor runs (cron, in schedule_time_zone)."
  type        = string
  default     = "0 6 * * *"
}

variable "replay_schedule" {
  description = "When the replay job loads dead-letter files into the prediction log (cron, in schedule_time_zone)."
  type        = string
  default     = "17 * * * *"
}

variable "alert_notification_channels" {
  description = "Monitoring notification channels (projects/<p>/notificationChannels/<id>) told when prediction rows reach the dead letter. Empty: the alert still opens incidents in Cloud Monitoring, it notifies no one."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for channel in var.alert_notification_channels : can(regex("^projects/[^/]+/notificationChannels/[^/]+$", channel))])
    error_message = "alert_notification_channels: full names, projects/<project>/notificationChannels/<id>."
  }
}

variable "schedule_time_zone" {
  description = "Time zone of the schedule."
  type        = string
  default     = "Etc/UTC"
}

# ---------------------------------------------------------------- prediction function (Cloud Functions 2nd gen)

variable "function_name" {
  description = "Function name. Default: <name_prefix>-predict."
  type        = string
  default     = null
}

variable "function_zip" {
  description = "Source zip of the function, built by `make function-zip` (functions/predict/ plus the prediction log schema)."
  type        = string
  default     = null
}

variable "function_entry_point" {
  description = "Python function in functions/predict/main.py that serves requests."
  type        = string
  default     = "predict"
}

variable "function_memory" {
  description = "Memory of a function instance."
  type        = string
  default     = "512Mi"
}

variable "function_cpu" {
  description = "vCPUs of a function instance (at least 1 for concurrency > 1). Also sizes ORT_INTRA_OP_THREADS and SOLO_ORT_THREADS (unless set below)."
  type        = string
  default     = "1"
}

variable "function_min_instances" {
  description = "Instances kept warm (0 = scale to zero, pay nothing idle, accept cold starts)."
  type        = number
  default     = 0
}

variable "function_max_instances" {
  description = "Upper bound on instances (caps cost and BigQuery insert rate)."
  type        = number
  default     = 5
}

variable "function_concurrency" {
  description = "Requests Cloud Run sends to one instance at once (they queue for THREADS workers)."
  type        = number
  default     = 4
}

variable "function_threads" {
  description = "functions-framework worker threads (THREADS). Size with ORT threads so THREADS x ORT threads = vCPUs (measured on 2 vCPUs: 2 x 1 best; see reports/bench_serve.md)."
  type        = number
  default     = 1
}

variable "function_ort_threads" {
  description = "onnxruntime intra-op threads (ORT_INTRA_OP_THREADS). Default: vCPUs of function_cpu divided by function_threads (at least 1)."
  type        = number
  default     = null
}

variable "function_solo_ort_threads" {
  description = "Threads of the solo session, for a request alone in flight (SOLO_ORT_THREADS). Default: the whole vCPUs of function_cpu, so 1 (solo session off) on 1 vCPU."
  type        = number
  default     = null
}

variable "function_timeout_seconds" {
  description = "Request timeout of the function."
  type        = number
  default     = 60
}

variable "function_ingress" {
  description = "Who can reach the function over the network (IAM still decides who may call it)."
  type        = string
  default     = "ALLOW_ALL"

  validation {
    condition     = contains(["ALLOW_ALL", "ALLOW_INTERNAL_ONLY", "ALLOW_INTERNAL_AND_GCLB"], var.function_ingress)
    error_message = "function_ingress: ALLOW_ALL, ALLOW_INTERNAL_ONLY or ALLOW_INTERNAL_AND_GCLB."
  }
}

variable "log_text" {
  description = "Store the text of each prediction in the log (LOG_TEXT). Off: only its sha256 is stored."
  type        = bool
  default     = false
}

variable "invoker_members" {
  description = "Principals allowed to call the function, e.g. [\"user:me@example.com\", \"serviceAccount:client@p.iam.gserviceaccount.com\"]."
  type        = list(string)
  default     = []

  validation {
    # Public access has its own, explicit switch below.
    condition     = length(setintersection(var.invoker_members, ["allUsers", "allAuthenticatedUsers"])) == 0
    error_message = "invoker_members: use allow_unauthenticated = true for public access, not allUsers/allAuthenticatedUsers."
  }
}

variable "allow_unauthenticated" {
  description = "Let anyone on the internet call the function (adds allUsers as invoker). Off by default."
  type        = bool
  default     = false
}

# ---------------------------------------------------------------- batch scoring (Cloud Run v2 job + example schedule)

variable "score_input" {
  description = "What the score job scores (FND_SCORE_INPUT): a gs:// file, prefix or glob. It may read only under inputs/ of the artifact store (iam.tf). Default: <store>/inputs/score/."
  type        = string
  default     = null
}

variable "score_text_columns" {
  description = "Text column(s) of the score job's input (FND_SCORE_TEXT_COLUMNS), comma-separated."
  type        = string
  default     = "text"
}

variable "score_task_count" {
  description = "Tasks of one score job execution: each scores its share of the input (gcloud run jobs execute --tasks overrides it; a rerun of the same input must keep the count)."
  type        = number
  default     = 8
}

variable "score_parallelism" {
  description = "Tasks of the score job that run at once (0 = as many as Cloud Run allows)."
  type        = number
  default     = 0
}

variable "score_cpu" {
  description = "vCPUs of a score job task; onnxruntime uses all of them."
  type        = string
  default     = "2"
}

variable "score_memory" {
  description = "Memory of a score job task (gs:// inputs are downloaded to its in-memory disk)."
  type        = string
  default     = "4Gi"
}

variable "score_task_timeout" {
  description = "Longest a score job task may run (duration)."
  type        = string
  default     = "3600s"
}

variable "score_max_retries" {
  description = "Retries of a failed score job task; a retry redoes exactly its share and loads it once."
  type        = number
  default     = 3
}

variable "score_args" {
  description = "Extra arguments of `python -m score_job` (e.g. [\"--id-column\", \"post_id\"])."
  type        = list(string)
  default     = []
}

variable "score_schedule" {
  description = "When the example scheduler runs the score job (cron, in schedule_time_zone)."
  type        = string
  default     = "30 2 * * *"
}

variable "score_schedule_paused" {
  description = "Keep the example score schedule paused (it is an example: the job scores whatever score_input holds at that time)."
  type        = bool
  default     = true
}
