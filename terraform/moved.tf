# Addresses before the jobs, service accounts and IAM grants became for_each over local maps.
# Terraform reads each moved block as a rename in the state, so an apply on a state written
# before moves the existing objects to their new keys instead of destroying and recreating them
# (a recreated service account is a new principal, a recreated job loses its executions, and the
# jobs' deletion_protection would stop the apply). On such a state the first plan must be a full
# one (make tf-plan): a targeted plan (make tf-registry, make deploy-function) refuses to run
# while moves outside its targets are pending.

moved {
  from = google_cloud_run_v2_job.train
  to   = google_cloud_run_v2_job.jobs["train"]
}

moved {
  from = google_cloud_run_v2_job.monitor
  to   = google_cloud_run_v2_job.jobs["monitor"]
}

moved {
  from = google_cloud_run_v2_job.replay
  to   = google_cloud_run_v2_job.jobs["replay"]
}

moved {
  from = google_cloud_run_v2_job.score
  to   = google_cloud_run_v2_job.jobs["score"]
}

moved {
  from = google_service_account.train
  to   = google_service_account.accounts["train"]
}

moved {
  from = google_service_account.monitor
  to   = google_service_account.accounts["monitor"]
}

moved {
  from = google_service_account.function
  to   = google_service_account.accounts["function"]
}

moved {
  from = google_service_account.replay
  to   = google_service_account.accounts["replay"]
}

moved {
  from = google_service_account.score
  to   = google_service_account.accounts["score"]
}

moved {
  from = google_service_account.scheduler
  to   = google_service_account.accounts["scheduler"]
}

moved {
  from = google_service_account.build
  to   = google_service_account.accounts["build"]
}

moved {
  from = google_storage_bucket_iam_member.train_reads_models
  to   = google_storage_bucket_iam_member.artifacts["train_reads_models"]
}

moved {
  from = google_storage_bucket_iam_member.train_publishes_bundles
  to   = google_storage_bucket_iam_member.artifacts["train_publishes_bundles"]
}

moved {
  from = google_storage_bucket_iam_member.train_moves_pointer
  to   = google_storage_bucket_iam_member.artifacts["train_moves_pointer"]
}

moved {
  from = google_storage_bucket_iam_member.train_runs
  to   = google_storage_bucket_iam_member.artifacts["train_runs"]
}

moved {
  from = google_storage_bucket_iam_member.train_teacher_logits
  to   = google_storage_bucket_iam_member.artifacts["train_teacher_logits"]
}

moved {
  from = google_storage_bucket_iam_member.train_reads_inputs
  to   = google_storage_bucket_iam_member.artifacts["train_reads_inputs"]
}

moved {
  from = google_storage_bucket_iam_member.monitor_reads_models
  to   = google_storage_bucket_iam_member.artifacts["monitor_reads_models"]
}

moved {
  from = google_storage_bucket_iam_member.function_reads_models
  to   = google_storage_bucket_iam_member.artifacts["function_reads_models"]
}

moved {
  from = google_storage_bucket_iam_member.function_spills_dead_letters
  to   = google_storage_bucket_iam_member.artifacts["function_spills_dead_letters"]
}

moved {
  from = google_storage_bucket_iam_member.replay_dead_letters
  to   = google_storage_bucket_iam_member.artifacts["replay_dead_letters"]
}

moved {
  from = google_storage_bucket_iam_member.score_reads_inputs
  to   = google_storage_bucket_iam_member.artifacts["score_reads_inputs"]
}

moved {
  from = google_storage_bucket_iam_member.score_reads_models
  to   = google_storage_bucket_iam_member.artifacts["score_reads_models"]
}

moved {
  from = google_storage_bucket_iam_member.score_writes_scores
  to   = google_storage_bucket_iam_member.artifacts["score_writes_scores"]
}

moved {
  from = google_storage_bucket_iam_member.score_reads_scores
  to   = google_storage_bucket_iam_member.artifacts["score_reads_scores"]
}

moved {
  from = google_project_iam_member.monitor_query_jobs
  to   = google_project_iam_member.project_level["monitor_query_jobs"]
}

moved {
  from = google_project_iam_member.replay_query_jobs
  to   = google_project_iam_member.project_level["replay_query_jobs"]
}

moved {
  from = google_project_iam_member.score_load_jobs
  to   = google_project_iam_member.project_level["score_load_jobs"]
}

moved {
  from = google_project_iam_member.build_logs
  to   = google_project_iam_member.project_level["build_logs"]
}

moved {
  from = google_bigquery_table_iam_member.monitor_inserts_baselines["baselines"]
  to   = google_bigquery_table_iam_member.tables["monitor_inserts_baselines"]
}

moved {
  from = google_bigquery_table_iam_member.monitor_inserts_baselines["baseline_bins"]
  to   = google_bigquery_table_iam_member.tables["monitor_inserts_baseline_bins"]
}

moved {
  from = google_bigquery_table_iam_member.replay_inserts_predictions
  to   = google_bigquery_table_iam_member.tables["replay_inserts_predictions"]
}

moved {
  from = google_bigquery_table_iam_member.replay_reads_predictions
  to   = google_bigquery_table_iam_member.tables["replay_reads_predictions"]
}

moved {
  from = google_bigquery_table_iam_member.score_loads_scores
  to   = google_bigquery_table_iam_member.tables["score_loads_scores"]
}

moved {
  from = google_cloud_run_v2_job_iam_member.monitor_starts_training
  to   = google_cloud_run_v2_job_iam_member.invokers["monitor_starts_training"]
}

moved {
  from = google_cloud_run_v2_job_iam_member.scheduler_runs_monitor
  to   = google_cloud_run_v2_job_iam_member.invokers["scheduler_runs_monitor"]
}

moved {
  from = google_cloud_run_v2_job_iam_member.scheduler_runs_score
  to   = google_cloud_run_v2_job_iam_member.invokers["scheduler_runs_score"]
}

moved {
  from = google_cloud_run_v2_job_iam_member.scheduler_runs_replay
  to   = google_cloud_run_v2_job_iam_member.invokers["scheduler_runs_replay"]
}
