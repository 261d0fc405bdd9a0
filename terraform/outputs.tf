output "function_url" {
  description = "HTTPS endpoint of the prediction function (call it with an identity token: make call-function)."
  value       = google_cloudfunctions2_function.predict.url
}

output "function_name" {
  description = "Name of the prediction function."
  value       = google_cloudfunctions2_function.predict.name
}

output "train_job_name" {
  description = "Cloud Run job that retrains: gcloud run jobs execute <name> --region <region>."
  value       = google_cloud_run_v2_job.jobs["train"].name
}

output "monitor_job_name" {
  description = "Cloud Run job the scheduler runs (drift report, retrain on drift)."
  value       = google_cloud_run_v2_job.jobs["monitor"].name
}

output "replay_job_name" {
  description = "Cloud Run job that loads dead-letter files into the prediction log (scheduled; run now with make run-replay)."
  value       = google_cloud_run_v2_job.jobs["replay"].name
}

output "dataset" {
  description = "BigQuery dataset with the prediction log, the baselines and the dashboard views."
  value       = "${var.project}.${google_bigquery_dataset.monitoring.dataset_id}"
}

output "dashboard_views" {
  description = "Views to point Looker Studio at."
  value       = sort([for view in google_bigquery_table.views : "${var.project}.${view.dataset_id}.${view.table_id}"])
}

output "bucket" {
  description = "Artifact store (STORE for the train job)."
  value       = local.store_uri
}

output "image_repository" {
  description = "Where `make image` pushes the jobs image."
  value       = "${var.region}-docker.pkg.dev/${var.project}/${google_artifact_registry_repository.images.repository_id}"
}

output "score_job_name" {
  description = "Cloud Run job that scores a backlog in parallel tasks: gcloud run jobs execute <name> --tasks N (make run-score)."
  value       = google_cloud_run_v2_job.jobs["score"].name
}

output "scores_table" {
  description = "BigQuery table the score job loads its shards into."
  value       = "${var.project}.${google_bigquery_table.scores.dataset_id}.${google_bigquery_table.scores.table_id}"
}
