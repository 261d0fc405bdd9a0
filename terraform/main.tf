# fakenews-detector on Google Cloud.
#
#   storage.tf    artifact store bucket (models/, runs/, teacher_logits/, inputs/, dead_letter/,
#                 sources/)
#   registry.tf   Artifact Registry repositories: jobs image, function build images
#   bigquery.tf   dataset (with its access list), prediction log, baselines, batch scores,
#                 dashboard views (sql/)
#   prediction_log_sink.tf  the function's stdout log lines routed into BigQuery
#                 (PREDICTION_LOG=stdout)
#   iam.tf        one service account per workload, roles bound on the resources (and object
#                 prefixes) they touch; Data Access audit logs
#   moved.tf      the addresses resources had before iam.tf and jobs.tf used for_each
#   jobs.tf       Cloud Run v2 jobs: train (python -m train_job), monitor and replay
#                 (python -m monitoring), score (python -m score_job, parallel tasks), all from
#                 the jobs image (jobs_image/Dockerfile), deployed by digest
#   function.tf   Cloud Functions 2nd gen prediction function and who may invoke it
#   scheduler.tf  Cloud Scheduler jobs: the monitor (which may start a retrain), the replay and an
#                 example batch scoring run (paused by default)
#   alerts.tf     log-based metric and alert policy on prediction rows that reach the dead letter
#
# Deployment commands are in mk/cloud.mk and docs/production.md. The configuration is checked
# offline (format, references, provider schema, checkov) by tools/tfcheck (`make tf-check`).

locals {
  bucket_name   = coalesce(var.bucket_name, "${var.project}-${var.name_prefix}-artifacts")
  dataset_id    = coalesce(var.dataset_id, "${replace(var.name_prefix, "-", "_")}_monitoring")
  bq_location   = coalesce(var.bigquery_location, var.region)
  function_name = coalesce(var.function_name, "${var.name_prefix}-predict")
  function_zip  = coalesce(var.function_zip, "${path.module}/../build/function.zip")

  # The artifact store layout shared by every component (see README): the train job publishes
  # bundles under models/ and moves the models/production.json pointer; the function loads it.
  store_uri           = "gs://${local.bucket_name}"
  model_uri           = "${local.store_uri}/models/production.json"
  dead_letter_uri     = "${local.store_uri}/dead_letter"
  predictions_table   = "predictions"
  baselines_table     = "baselines"
  baseline_bins_table = "baseline_bins"
  scores_table        = "scores"
  score_input         = coalesce(var.score_input, "${local.store_uri}/inputs/score/")
  prediction_log      = "bq://${var.project}.${local.dataset_id}.${local.predictions_table}"

  apis = toset([
    "artifactregistry.googleapis.com",
    "bigquery.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "cloudscheduler.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
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
