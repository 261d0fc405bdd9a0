# One service account per workload, each with only what it does, granted on the resource it
# touches (job, repository, table, dataset, or an object-name prefix of the artifact store), not on
# the project. The few project-level grants are roles Google only grants at project level; they say
# so where they are. tools/tfcheck (least-privilege) fails on any other project-level grant and on
# a storage role without an object-prefix condition.
#
# Storage conditions (the bucket has uniform bucket-level access, which IAM conditions need):
#   objects:  resource.type == 'storage.googleapis.com/Object'
#             && resource.name.startsWith('projects/_/buckets/<bucket>/objects/<prefix>')
#   listing:  objects.list is checked on the bucket, not on an object, so a listing grant is a
#             second clause: resource.type == 'storage.googleapis.com/Bucket'
#             && api.getAttribute('storage.googleapis.com/objectListPrefix', '').startsWith('<prefix>')
#             (only a list request whose prefix lies inside <prefix> passes). It is added only where
#             the code lists.
# The expressions are written out in full (no locals) so the offline check can read each prefix.

# ---------------------------------------------------------------- service accounts

resource "google_service_account" "train" {
  account_id   = "${var.name_prefix}-train"
  display_name = "fakenews-detector train job"
  description  = "Runs python -m train_job: publishes bundles under models/, checkpoints under runs/."
}

resource "google_service_account" "monitor" {
  account_id   = "${var.name_prefix}-monitor"
  display_name = "fakenews-detector monitor job"
  description  = "Runs python -m monitoring monitor: loads baselines, queries the prediction log, starts the train job on drift."
}

resource "google_service_account" "function" {
  account_id   = "${var.name_prefix}-function"
  display_name = "fakenews-detector prediction function"
  description  = "Serves predictions: reads models/, appends prediction rows, spills refused rows to dead_letter/."
}

resource "google_service_account" "replay" {
  account_id   = "${var.name_prefix}-replay"
  display_name = "fakenews-detector dead-letter replay"
  description  = "Runs python -m monitoring replay: loads dead_letter/ files into the prediction log."
}

resource "google_service_account" "score" {
  account_id   = "${var.name_prefix}-score"
  display_name = "fakenews-detector score job"
  description  = "Runs python -m score_job: reads inputs/ and models/, writes scores/ shards, loads them into the scores table."
}

resource "google_service_account" "scheduler" {
  account_id   = "${var.name_prefix}-scheduler"
  display_name = "fakenews-detector scheduler"
  description  = "Cloud Scheduler identity: may only execute the monitor, replay and score jobs."
}

resource "google_service_account" "build" {
  account_id   = "${var.name_prefix}-build"
  display_name = "fakenews-detector function build"
  description  = "Cloud Build identity for the function build: reads its source, pushes its image, writes build logs."
}

# ---------------------------------------------------------------- custom roles

# insertAll (streaming rows) needs bigquery.tables.updateData on the table, plus tables.get as
# Google documents for the streaming API. No predefined role stops there: dataEditor also reads,
# updates and deletes the table. Without bigquery.jobs.create (not granted to the function) these
# permissions allow no DML and no load job either.
resource "google_project_iam_custom_role" "table_row_inserter" {
  role_id     = "${replace(var.name_prefix, "-", "_")}_table_row_inserter"
  title       = "fakenews-detector table row inserter"
  description = "Append rows to a BigQuery table with insertAll; no read, update or delete of the table."
  permissions = ["bigquery.tables.get", "bigquery.tables.updateData"]
}

# A load job appends a file to a table: bigquery.tables.updateData on the table (and tables.get, to
# find its location), with bigquery.jobs.create from roles/bigquery.jobUser. No read of the rows
# (tables.getData); like the row inserters with jobUser, BigQuery has no permission that would
# allow the load but not DML on this one table.
resource "google_project_iam_custom_role" "table_loader" {
  role_id     = "${replace(var.name_prefix, "-", "_")}_table_loader"
  title       = "fakenews-detector table loader"
  description = "Append files to a BigQuery table with load jobs; no read, update or delete of its rows."
  permissions = ["bigquery.tables.get", "bigquery.tables.updateData"]
}

# ---------------------------------------------------------------- train job

# Reads bundles and the pointer, lists models/ to find complete versions (and a teacher bundle).
resource "google_storage_bucket_iam_member" "train_reads_models" {
  bucket = google_storage_bucket.artifacts.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.train.member
  condition {
    title       = "models-read-and-list"
    description = "Read objects under models/ and list that prefix."
    expression  = "(resource.type == 'storage.googleapis.com/Object' && resource.name.startsWith('projects/_/buckets/${google_storage_bucket.artifacts.name}/objects/models/')) || (resource.type == 'storage.googleapis.com/Bucket' && api.getAttribute('storage.googleapis.com/objectListPrefix', '').startsWith('models/'))"
  }
}

# Uploads new bundles under models/<version>/ (a fresh name per run): create only, so a published
# bundle cannot be overwritten or deleted by a later run.
resource "google_storage_bucket_iam_member" "train_publishes_bundles" {
  bucket = google_storage_bucket.artifacts.name
  role   = "roles/storage.objectCreator"
  member = google_service_account.train.member
  condition {
    title       = "models-create"
    description = "Create objects under models/."
    expression  = "resource.type == 'storage.googleapis.com/Object' && resource.name.startsWith('projects/_/buckets/${google_storage_bucket.artifacts.name}/objects/models/')"
  }
}

# Promotion replaces models/production.json (a generation-matched overwrite needs delete too);
# that one object is the only one under models/ it may replace.
resource "google_storage_bucket_iam_member" "train_moves_pointer" {
  bucket = google_storage_bucket.artifacts.name
  role   = "roles/storage.objectUser"
  member = google_service_account.train.member
  condition {
    title       = "production-pointer"
    description = "Read and replace models/production.json."
    expression  = "resource.type == 'storage.googleapis.com/Object' && resource.name == 'projects/_/buckets/${google_storage_bucket.artifacts.name}/objects/models/production.json'"
  }
}

# Checkpoints and run outputs: overwritten every epoch, read back when a retried task resumes,
# listed to collect the best epoch's files.
resource "google_storage_bucket_iam_member" "train_runs" {
  bucket = google_storage_bucket.artifacts.name
  role   = "roles/storage.objectUser"
  member = google_service_account.train.member
  condition {
    title       = "runs-read-write-list"
    description = "Read, write and list objects under runs/."
    expression  = "(resource.type == 'storage.googleapis.com/Object' && resource.name.startsWith('projects/_/buckets/${google_storage_bucket.artifacts.name}/objects/runs/')) || (resource.type == 'storage.googleapis.com/Bucket' && api.getAttribute('storage.googleapis.com/objectListPrefix', '').startsWith('runs/'))"
  }
}

# Cache of a teacher's logits (train_job/distill.py): looked up by name, written when missing.
resource "google_storage_bucket_iam_member" "train_teacher_logits" {
  bucket = google_storage_bucket.artifacts.name
  role   = "roles/storage.objectUser"
  member = google_service_account.train.member
  condition {
    title       = "teacher-logits-read-write"
    description = "Read and write objects under teacher_logits/."
    expression  = "resource.type == 'storage.googleapis.com/Object' && resource.name.startsWith('projects/_/buckets/${google_storage_bucket.artifacts.name}/objects/teacher_logits/')"
  }
}

# Training inputs given as gs:// in this bucket (--data, --base-model, --teacher folders are
# downloaded by listing their prefix): read-only, under inputs/.
resource "google_storage_bucket_iam_member" "train_reads_inputs" {
  bucket = google_storage_bucket.artifacts.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.train.member
  condition {
    title       = "inputs-read-and-list"
    description = "Read objects under inputs/ and list that prefix."
    expression  = "(resource.type == 'storage.googleapis.com/Object' && resource.name.startsWith('projects/_/buckets/${google_storage_bucket.artifacts.name}/objects/inputs/')) || (resource.type == 'storage.googleapis.com/Bucket' && api.getAttribute('storage.googleapis.com/objectListPrefix', '').startsWith('inputs/'))"
  }
}

# ---------------------------------------------------------------- monitor job

# Running a query creates a BigQuery job, and jobs belong to a project: this role cannot be bound
# on a dataset. It grants bigquery.jobs.create only; the data stays governed by the dataset access
# block (the monitor is a READER there, see bigquery.tf).
resource "google_project_iam_member" "monitor_query_jobs" {
  project = var.project
  role    = "roles/bigquery.jobUser"
  member  = google_service_account.monitor.member
}

# Streams the production bundle's baseline.json (before each drift check) into these two tables.
resource "google_bigquery_table_iam_member" "monitor_inserts_baselines" {
  for_each = {
    baselines     = google_bigquery_table.baselines
    baseline_bins = google_bigquery_table.baseline_bins
  }

  dataset_id = each.value.dataset_id
  table_id   = each.value.table_id
  role       = google_project_iam_custom_role.table_row_inserter.name
  member     = google_service_account.monitor.member
}

# Reads models/production.json and the manifest and baseline.json of the bundle it names.
resource "google_storage_bucket_iam_member" "monitor_reads_models" {
  bucket = google_storage_bucket.artifacts.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.monitor.member
  condition {
    title       = "models-read"
    description = "Read objects under models/."
    expression  = "resource.type == 'storage.googleapis.com/Object' && resource.name.startsWith('projects/_/buckets/${google_storage_bucket.artifacts.name}/objects/models/')"
  }
}

# On drift, RETRAIN_COMMAND executes the train job (run.jobs.run is part of run.invoker).
resource "google_cloud_run_v2_job_iam_member" "monitor_starts_training" {
  location = google_cloud_run_v2_job.train.location
  name     = google_cloud_run_v2_job.train.name
  role     = "roles/run.invoker"
  member   = google_service_account.monitor.member
}

# ---------------------------------------------------------------- function

# Reads models/production.json and the files of the bundle it names (by name, never a listing).
resource "google_storage_bucket_iam_member" "function_reads_models" {
  bucket = google_storage_bucket.artifacts.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.function.member
  condition {
    title       = "models-read"
    description = "Read objects under models/."
    expression  = "resource.type == 'storage.googleapis.com/Object' && resource.name.startsWith('projects/_/buckets/${google_storage_bucket.artifacts.name}/objects/models/')"
  }
}

# Spills prediction rows BigQuery refused to dead_letter/ for replay: create only, so it can
# neither read nor delete what is already there.
resource "google_storage_bucket_iam_member" "function_spills_dead_letters" {
  bucket = google_storage_bucket.artifacts.name
  role   = "roles/storage.objectCreator"
  member = google_service_account.function.member
  condition {
    title       = "dead-letter-create"
    description = "Create objects under dead_letter/."
    expression  = "resource.type == 'storage.googleapis.com/Object' && resource.name.startsWith('projects/_/buckets/${google_storage_bucket.artifacts.name}/objects/dead_letter/')"
  }
}

# Streams prediction rows into the log table (insertAll); it cannot read or delete them. Only
# with function_prediction_log = "bigquery": on stdout the Logging sink writes the rows.
resource "google_bigquery_table_iam_member" "function_inserts_predictions" {
  count = local.log_via_stdout ? 0 : 1

  dataset_id = google_bigquery_table.predictions.dataset_id
  table_id   = google_bigquery_table.predictions.table_id
  role       = google_project_iam_custom_role.table_row_inserter.name
  member     = google_service_account.function.member
}

# ---------------------------------------------------------------- dead-letter replay job

# Lists pending files in dead_letter/, reads them, writes rejected-*.jsonl next to them and moves
# replayed files to dead_letter/replayed/ (copy, then delete the original).
resource "google_storage_bucket_iam_member" "replay_dead_letters" {
  bucket = google_storage_bucket.artifacts.name
  role   = "roles/storage.objectUser"
  member = google_service_account.replay.member
  condition {
    title       = "dead-letter-read-write-list"
    description = "Read, write, delete and list objects under dead_letter/."
    expression  = "(resource.type == 'storage.googleapis.com/Object' && resource.name.startsWith('projects/_/buckets/${google_storage_bucket.artifacts.name}/objects/dead_letter/')) || (resource.type == 'storage.googleapis.com/Bucket' && api.getAttribute('storage.googleapis.com/objectListPrefix', '').startsWith('dead_letter/'))"
  }
}

# Inserts the rows that are not in the log yet.
resource "google_bigquery_table_iam_member" "replay_inserts_predictions" {
  dataset_id = google_bigquery_table.predictions.dataset_id
  table_id   = google_bigquery_table.predictions.table_id
  role       = google_project_iam_custom_role.table_row_inserter.name
  member     = google_service_account.replay.member
}

# Finds which rows of a file are already in the log (one query per file), so a replay never
# duplicates a row: read access to this one table, no other.
resource "google_bigquery_table_iam_member" "replay_reads_predictions" {
  dataset_id = google_bigquery_table.predictions.dataset_id
  table_id   = google_bigquery_table.predictions.table_id
  role       = "roles/bigquery.dataViewer"
  member     = google_service_account.replay.member
}

# That query is a BigQuery job, and jobs belong to a project (see monitor_query_jobs).
resource "google_project_iam_member" "replay_query_jobs" {
  project = var.project
  role    = "roles/bigquery.jobUser"
  member  = google_service_account.replay.member
}

# ---------------------------------------------------------------- score job

# Reads the input files: a file by name, a prefix or a glob by listing, under inputs/ only.
resource "google_storage_bucket_iam_member" "score_reads_inputs" {
  bucket = google_storage_bucket.artifacts.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.score.member
  condition {
    title       = "inputs-read-and-list"
    description = "Read objects under inputs/ and list that prefix."
    expression  = "(resource.type == 'storage.googleapis.com/Object' && resource.name.startsWith('projects/_/buckets/${google_storage_bucket.artifacts.name}/objects/inputs/')) || (resource.type == 'storage.googleapis.com/Bucket' && api.getAttribute('storage.googleapis.com/objectListPrefix', '').startsWith('inputs/'))"
  }
}

# Reads models/production.json and the files of the bundle it names (by name, never a listing).
resource "google_storage_bucket_iam_member" "score_reads_models" {
  bucket = google_storage_bucket.artifacts.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.score.member
  condition {
    title       = "models-read"
    description = "Read objects under models/."
    expression  = "resource.type == 'storage.googleapis.com/Object' && resource.name.startsWith('projects/_/buckets/${google_storage_bucket.artifacts.name}/objects/models/')"
  }
}

# Creates its shards, rejects, plan and load records under scores/ (each once: create only, so a
# rerun can neither overwrite nor delete a finished shard).
resource "google_storage_bucket_iam_member" "score_writes_scores" {
  bucket = google_storage_bucket.artifacts.name
  role   = "roles/storage.objectCreator"
  member = google_service_account.score.member
  condition {
    title       = "scores-create"
    description = "Create objects under scores/."
    expression  = "resource.type == 'storage.googleapis.com/Object' && resource.name.startsWith('projects/_/buckets/${google_storage_bucket.artifacts.name}/objects/scores/')"
  }
}

# Reads them back: a rerun checks what an earlier run finished, and the load job reads the shard
# with the job's identity.
resource "google_storage_bucket_iam_member" "score_reads_scores" {
  bucket = google_storage_bucket.artifacts.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.score.member
  condition {
    title       = "scores-read"
    description = "Read objects under scores/."
    expression  = "resource.type == 'storage.googleapis.com/Object' && resource.name.startsWith('projects/_/buckets/${google_storage_bucket.artifacts.name}/objects/scores/')"
  }
}

# Appends shards to the scores table with load jobs; it cannot read or change the rows.
resource "google_bigquery_table_iam_member" "score_loads_scores" {
  dataset_id = google_bigquery_table.scores.dataset_id
  table_id   = google_bigquery_table.scores.table_id
  role       = google_project_iam_custom_role.table_loader.name
  member     = google_service_account.score.member
}

# A load job is a BigQuery job, and jobs belong to a project (see monitor_query_jobs).
resource "google_project_iam_member" "score_load_jobs" {
  project = var.project
  role    = "roles/bigquery.jobUser"
  member  = google_service_account.score.member
}

# ---------------------------------------------------------------- scheduler

resource "google_cloud_run_v2_job_iam_member" "scheduler_runs_monitor" {
  location = google_cloud_run_v2_job.monitor.location
  name     = google_cloud_run_v2_job.monitor.name
  role     = "roles/run.invoker"
  member   = google_service_account.scheduler.member
}

resource "google_cloud_run_v2_job_iam_member" "scheduler_runs_score" {
  location = google_cloud_run_v2_job.score.location
  name     = google_cloud_run_v2_job.score.name
  role     = "roles/run.invoker"
  member   = google_service_account.scheduler.member
}

resource "google_cloud_run_v2_job_iam_member" "scheduler_runs_replay" {
  location = google_cloud_run_v2_job.replay.location
  name     = google_cloud_run_v2_job.replay.name
  role     = "roles/run.invoker"
  member   = google_service_account.scheduler.member
}

# ---------------------------------------------------------------- function build

data "google_project" "this" {
  project_id = var.project
}

# Cloud Functions copies the source zip (sources/ in the artifact store) into its own bucket
# gcf-v2-sources-<project number>-<region>, under <function name>/, and the build fetches it from
# there. That bucket is created by Cloud Functions on the first deploy, so the grant cannot be
# bound on it beforehand: it is a project-level binding whose condition admits only this
# function's objects in that bucket. The build reads nothing in the artifact store.
resource "google_project_iam_member" "build_reads_function_source" {
  project = var.project
  role    = "roles/storage.objectViewer"
  member  = google_service_account.build.member
  condition {
    title       = "function-source-read"
    description = "Read this function's source in the Cloud Functions source bucket."
    expression  = "resource.type == 'storage.googleapis.com/Object' && resource.name.startsWith('projects/_/buckets/gcf-v2-sources-${data.google_project.this.number}-${var.region}/objects/${local.function_name}/')"
  }
}

# Pushes the built image (and the buildpacks cache image) to the function builds repository only;
# it cannot touch the train job images the jobs run.
resource "google_artifact_registry_repository_iam_member" "build_pushes_function_image" {
  location   = google_artifact_registry_repository.function_builds.location
  repository = google_artifact_registry_repository.function_builds.name
  role       = "roles/artifactregistry.writer"
  member     = google_service_account.build.member
}

# Build logs are written to the project's log buckets; Logging has no narrower resource to bind on.
resource "google_project_iam_member" "build_logs" {
  project = var.project
  role    = "roles/logging.logWriter"
  member  = google_service_account.build.member
}

# ---------------------------------------------------------------- audit

# Data Access audit logs: who read or wrote which object of the artifact store and which table
# rows (with log_text on, the prediction log holds raw user texts). Google leaves them off by
# default for Cloud Storage; BigQuery writes most of its own by default, and this makes reads and
# writes explicit for both. Admin Activity logs (IAM changes, deploys) are always on.
resource "google_project_iam_audit_config" "data_access" {
  for_each = toset(["storage.googleapis.com", "bigquery.googleapis.com"])

  project = var.project
  service = each.value

  audit_log_config {
    log_type = "DATA_READ"
  }
  audit_log_config {
    log_type = "DATA_WRITE"
  }
}
