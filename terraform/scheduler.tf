# Runs the monitor, replay and (an example, paused) score jobs on a schedule through the Cloud Run
# Admin API (jobs/<name>:run).
# The call carries an OAuth token of the scheduler service account, which may only execute them.

resource "google_cloud_scheduler_job" "monitor" {
  name        = "${var.name_prefix}-monitor"
  region      = var.region
  description = "Runs ${google_cloud_run_v2_job.jobs["monitor"].name}: drift report, retrain on drift."
  schedule    = var.schedule
  time_zone   = var.schedule_time_zone

  attempt_deadline = "60s" # the API call only starts the execution; it does not wait for it

  retry_config {
    retry_count          = 3
    min_backoff_duration = "30s"
  }

  http_target {
    http_method = "POST"
    uri         = "https://run.googleapis.com/v2/${google_cloud_run_v2_job.jobs["monitor"].id}:run"

    oauth_token {
      service_account_email = google_service_account.accounts["scheduler"].email
      scope                 = "https://www.googleapis.com/auth/cloud-platform"
    }
  }

  depends_on = [google_project_service.apis, google_cloud_run_v2_job_iam_member.invokers]
}

resource "google_cloud_scheduler_job" "replay" {
  name        = "${var.name_prefix}-replay"
  region      = var.region
  description = "Runs ${google_cloud_run_v2_job.jobs["replay"].name}: loads dead-letter files into the prediction log."
  schedule    = var.replay_schedule
  time_zone   = var.schedule_time_zone

  attempt_deadline = "60s" # the API call only starts the execution; it does not wait for it

  retry_config {
    retry_count          = 3
    min_backoff_duration = "30s"
  }

  http_target {
    http_method = "POST"
    uri         = "https://run.googleapis.com/v2/${google_cloud_run_v2_job.jobs["replay"].id}:run"

    oauth_token {
      service_account_email = google_service_account.accounts["scheduler"].email
      scope                 = "https://www.googleapis.com/auth/cloud-platform"
    }
  }

  depends_on = [google_project_service.apis, google_cloud_run_v2_job_iam_member.invokers]
}

# An example batch scoring run: the score job over score_input with its configured task count.
# Paused by default (score_schedule_paused): it scores whatever score_input holds when it fires,
# and a changed set of files is a new input, so point it at a prefix that holds one batch at a time.
resource "google_cloud_scheduler_job" "score" {
  name        = "${var.name_prefix}-score"
  region      = var.region
  description = "Runs ${google_cloud_run_v2_job.jobs["score"].name}: batch scores of ${local.score_input}."
  schedule    = var.score_schedule
  time_zone   = var.schedule_time_zone
  paused      = var.score_schedule_paused

  attempt_deadline = "60s" # the API call only starts the execution; it does not wait for it

  retry_config {
    retry_count          = 3
    min_backoff_duration = "30s"
  }

  http_target {
    http_method = "POST"
    uri         = "https://run.googleapis.com/v2/${google_cloud_run_v2_job.jobs["score"].id}:run"

    oauth_token {
      service_account_email = google_service_account.accounts["scheduler"].email
      scope                 = "https://www.googleapis.com/auth/cloud-platform"
    }
  }

  depends_on = [google_project_service.apis, google_cloud_run_v2_job_iam_member.invokers]
}
