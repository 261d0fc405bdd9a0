# fakenews-detector on Google Cloud.
#
#   storage.tf    artifact store bucket (models/, runs/, dead_letter/, sources/)
#   registry.tf   Artifact Registry repository for the train job image
#   bigquery.tf   dataset, prediction log table, baselines table, dashboard views (all from sql/)
#   prediction_log_sink.tf  the function's stdout log lines routed into BigQuery (PREDICTION_LOG=stdout)
#   iam.tf        one service account per workload, roles bound on the resources they touch
#   jobs.tf       Cloud Run v2 jobs: train (python -m train_job) and monitor (python -m monitoring)
#   function.tf   Cloud Functions 2nd gen prediction function and who may invoke it
#   scheduler.tf  Cloud Scheduler job that runs the monitor job (which may start a retrain)
#
# Deployment commands are in mk/cloud.mk and docs/production.md. The configuration is checked
# offline (format, references, provider schema, checkov) by tools/tfcheck (`make tf-check`).

locals {
  bucket_name   = coalesce(var.bucket_name, "${var.project}-${var.name_prefix}-artifacts")
  dataset_id    = coalesce(var.dataset_id, "${replace(var.name_prefix, "-", "_")}_monitoring")
  bq_location   = coalesce(var.bigquery_location, var.region)
  function_name = coalesce(var.function_name, "${var.name_prefix}-predict")
  function_zip  = coalesce(var.function_zip, "${path.module}/../build/function.zip")
  image = coalesce(
    var.image,
    "${var.region}-docker.pkg.dev/${var.project}/${var.name_prefix}/train-job:${var.image_tag}",
  )

  # The artifact store layout shared by every component (see README): the train job publishes
  # bundles under models/ and moves the models/production.json pointer; the function loads it.
  store_uri           = "gs://${local.bucket_name}"
  model_uri           = "${local.store_uri}/models/production.json"
  dead_letter_uri     = "${local.store_uri}/dead_letter"
  predictions_table   = "predictions"
  baselines_table     = "baselines"
  baseline_bins_table = "baseline_bins"
  prediction_log      = "bq://${var.project}.${local.dataset_id}.${local.predictions_table}"

  apis = toset([
    "artifactregistry.googleapis.com",
    "bigquery.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "cloudscheduler.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "run.googleapis.com",
    "storage.googleapis.com",
  ])
}

resource "google_project_service" "apis" {
  for_each = var.enable_apis ? local.apis : toset([])

  project = var.project
  service = each.value

  # Other workloads in the project may use these APIs too: never switch them off on destroy.
  disable_on_destroy = false
}
