# One service account per workload, each with only what it does, granted on the resource it
# touches (bucket, dataset, table, job, repository), not on the project. The two exceptions are
# roles Google only grants at project level; they say so where they are.

resource "google_service_account" "train" {
  account_id   = "${var.name_prefix}-train"
  display_name = "fakenews-detector train job"
  description  = "Runs python -m train_job: reads and writes the artifact store."
}

resource "google_service_account" "monitor" {
  account_id   = "${var.name_prefix}-monitor"
  display_name = "fakenews-detector monitor job"
  description  = "Runs python -m monitoring monitor: loads baselines, queries the prediction log, starts the train job on drift."
}

resource "google_service_account" "function" {
  account_id   = "${var.name_prefix}-function"
  display_name = "fakenews-detector prediction function"
  description  = "Serves predictions: reads the promoted bundle, appends prediction rows."
}

resource "google_service_account" "scheduler" {
  account_id   = "${var.name_prefix}-scheduler"
  display_name = "fakenews-detector scheduler"
  description  = "Cloud Scheduler identity: may only execute the monitor job."
}

resource "google_service_account" "build" {
  account_id   = "${var.name_prefix}-build"
  display_name = "fakenews-detector function build"
  description  = "Cloud Build identity for the function build: reads its source, pushes its image, writes build logs."
}

# ---------------------------------------------------------------- train job

# Read and write objects (bundles, pointer, checkpoints), no bucket or IAM administration.
resource "google_storage_bucket_iam_member" "train_store" {
  bucket = google_storage_bucket.artifacts.name
  role   = "roles/storage.objectUser"
  member = google_service_account.train.member
}

# ---------------------------------------------------------------- monitor job

resource "google_bigquery_dataset_iam_member" "monitor_read" {
  dataset_id = google_bigquery_dataset.monitoring.dataset_id
  role       = "roles/bigquery.dataViewer"
  member     = google_service_account.monitor.member
}

# Running a query creates a BigQuery job, and jobs belong to a project: this role cannot be bound
# on a dataset. It grants bigquery.jobs.create only; the data stays governed by the dataset role.
resource "google_project_iam_member" "monitor_query_jobs" {
  project = var.project
  role    = "roles/bigquery.jobUser"
  member  = google_service_account.monitor.member
}

# Loads the production bundle's baseline.json (before each drift check) into these two tables.
resource "google_bigquery_table_iam_member" "monitor_baselines" {
  for_each = {
    baselines     = google_bigquery_table.baselines
    baseline_bins = google_bigquery_table.baseline_bins
  }

  dataset_id = each.value.dataset_id
  table_id   = each.value.table_id
  role       = "roles/bigquery.dataEditor"
  member     = google_service_account.monitor.member
}

# Reads models/production.json and the baseline.json of the bundle it names.
resource "google_storage_bucket_iam_member" "monitor_read_store" {
  bucket = google_storage_bucket.artifacts.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.monitor.member
}

# On drift, RETRAIN_COMMAND executes the train job (run.jobs.run is part of run.invoker).
resource "google_cloud_run_v2_job_iam_member" "monitor_starts_training" {
  location = google_cloud_run_v2_job.train.location
  name     = google_cloud_run_v2_job.train.name
  role     = "roles/run.invoker"
  member   = google_service_account.monitor.member
}

# ---------------------------------------------------------------- function

# Reads models/production.json and the bundle it names.
resource "google_storage_bucket_iam_member" "function_read_models" {
  bucket = google_storage_bucket.artifacts.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.function.member
}

# Spills prediction rows BigQuery refused to dead_letter/ (and nowhere else) for `replay`.
resource "google_storage_bucket_iam_member" "function_dead_letter" {
  bucket = google_storage_bucket.artifacts.name
  role   = "roles/storage.objectCreator"
  member = google_service_account.function.member
  condition {
    title       = "dead-letter-prefix-only"
    description = "Create objects under dead_letter/ only."
    expression  = "resource.name.startsWith(\"projects/_/buckets/${google_storage_bucket.artifacts.name}/objects/dead_letter/\")"
  }
}

# Streams prediction rows into the log table (insertAll), no other table.
resource "google_bigquery_table_iam_member" "function_log" {
  dataset_id = google_bigquery_table.predictions.dataset_id
  table_id   = google_bigquery_table.predictions.table_id
  role       = "roles/bigquery.dataEditor"
  member     = google_service_account.function.member
}

# ---------------------------------------------------------------- scheduler

resource "google_cloud_run_v2_job_iam_member" "scheduler_runs_monitor" {
  location = google_cloud_run_v2_job.monitor.location
  name     = google_cloud_run_v2_job.monitor.name
  role     = "roles/run.invoker"
  member   = google_service_account.scheduler.member
}

# ---------------------------------------------------------------- function build

resource "google_storage_bucket_iam_member" "build_reads_source" {
  bucket = google_storage_bucket.artifacts.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.build.member
}

resource "google_artifact_registry_repository_iam_member" "build_pushes_image" {
  location   = google_artifact_registry_repository.images.location
  repository = google_artifact_registry_repository.images.name
  role       = "roles/artifactregistry.writer"
  member     = google_service_account.build.member
}

# Build logs are written to the project's log buckets; Logging has no narrower resource to bind on.
resource "google_project_iam_member" "build_logs" {
  project = var.project
  role    = "roles/logging.logWriter"
  member  = google_service_account.build.member
}
