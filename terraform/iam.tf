# One service account per workload, each with only what it does, granted on the resource it
# touches (job, repository, table, dataset, or an object-name prefix of the artifact store), not on
# the project. The few project-level grants are roles Google only grants at project level; they say
# so where they are. tools/tfcheck (least-privilege) fails on any other project-level grant and on
# a storage role without an object-prefix condition.
#
# Grants of one kind are one resource with for_each over a local map, keyed by what the grant is
# for (train_reads_models); an entry names the service account by its key in
# local.service_accounts.
#
# Storage conditions (the bucket has uniform bucket-level access, which IAM conditions need):
#   objects:  resource.type == 'storage.googleapis.com/Object'
#             && resource.name.startsWith('projects/_/buckets/<bucket>/objects/<prefix>')
#   listing:  objects.list is checked on the bucket, not on an object, so a listing grant is a
#             second clause: resource.type == 'storage.googleapis.com/Bucket'
#             && api.getAttribute('storage.googleapis.com/objectListPrefix', '').startsWith('<prefix>')
#             (only a list request whose prefix lies inside <prefix> passes). It is added only where
#             the code lists.
# The expressions are written out in full in the map entries (no other locals), so the offline
# check, which expands each map entry into its grant, can read each prefix.

# ---------------------------------------------------------------- service accounts

locals {
  # account_id: <name_prefix>-<key>.
  service_accounts = {
    train = {
      display_name = "fakenews-detector train job"
      description  = "Runs python -m train_job: publishes bundles under models/, checkpoints under runs/."
    }
    monitor = {
      display_name = "fakenews-detector monitor job"
      description  = "Runs python -m monitoring monitor: loads baselines, queries the prediction log, starts the train job on drift."
    }
    function = {
      display_name = "fakenews-detector prediction function"
      description  = "Serves predictions: reads models/, appends prediction rows, spills refused rows to dead_letter/."
    }
    replay = {
      display_name = "fakenews-detector dead-letter replay"
      description  = "Runs python -m monitoring replay: loads dead_letter/ files into the prediction log."
    }
    score = {
      display_name = "fakenews-detector score job"
      description  = "Runs python -m score_job: reads inputs/ and models/, writes scores/ shards, loads them into the scores table."
    }
    scheduler = {
      display_name = "fakenews-detector scheduler"
      description  = "Cloud Scheduler identity: may only execute the monitor, replay and score jobs."
    }
    build = {
      display_name = "fakenews-detector function build"
      description  = "Cloud Build identity for the function build: reads its source, pushes its image, writes build logs."
    }
  }
}

resource "google_service_account" "accounts" {
  for_each = local.service_accounts

  account_id   = "${var.name_prefix}-${each.key}"
  display_name = each.value.display_name
  description  = each.value.description
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

# ---------------------------------------------------------------- artifact store (object prefixes)

locals {
  artifact_store_grants = {
    # ---- train job

    # Reads bundles and the pointer, lists models/ to find complete versions (and a teacher bundle).
    train_reads_models = {
      account     = "train"
      role        = "roles/storage.objectViewer"
      title       = "models-read-and-list"
      description = "Read objects under models/ and list that prefix."
      expression  = "(resource.type == 'storage.googleapis.com/Object' && resource.name.startsWith('projects/_/buckets/${google_storage_bucket.artifacts.name}/objects/models/')) || (resource.type == 'storage.googleapis.com/Bucket' && api.getAttribute('storage.googleapis.com/objectListPrefix', '').startsWith('models/'))"
    }

    # Uploads new bundles under models/<version>/ (a fresh name per run): create only, so a
    # published bundle cannot be overwritten or deleted by a later run.
    train_publishes_bundles = {
      account     = "train"
      role        = "roles/storage.objectCreator"
      title       = "models-create"
      description = "Create objects under models/."
      expression  = "resource.type == 'storage.googleapis.com/Object' && resource.name.startsWith('projects/_/buckets/${google_storage_bucket.artifacts.name}/objects/models/')"
    }

    # Promotion replaces models/production.json (a generation-matched overwrite needs delete too);
    # that one object is the only one under models/ it may replace.
    train_moves_pointer = {
      account     = "train"
      role        = "roles/storage.objectUser"
      title       = "production-pointer"
      description = "Read and replace models/production.json."
      expression  = "resource.type == 'storage.googleapis.com/Object' && resource.name == 'projects/_/buckets/${google_storage_bucket.artifacts.name}/objects/models/production.json'"
    }

    # Checkpoints and run outputs: overwritten every epoch, read back when a retried task resumes,
    # listed to collect the best epoch's files.
    train_runs = {
      account     = "train"
      role        = "roles/storage.objectUser"
      title       = "runs-read-write-list"
      description = "Read, write and list objects under runs/."
      expression  = "(resource.type == 'storage.googleapis.com/Object' && resource.name.startsWith('projects/_/buckets/${google_storage_bucket.artifacts.name}/objects/runs/')) || (resource.type == 'storage.googleapis.com/Bucket' && api.getAttribute('storage.googleapis.com/objectListPrefix', '').startsWith('runs/'))"
    }

    # Cache of a teacher's logits (train_job/distill.py): looked up by name, written when missing.
    train_teacher_logits = {
      account     = "train"
      role        = "roles/storage.objectUser"
      title       = "teacher-logits-read-write"
      description = "Read and write objects under teacher_logits/."
      expression  = "resource.type == 'storage.googleapis.com/Object' && resource.name.startsWith('projects/_/buckets/${google_storage_bucket.artifacts.name}/objects/teacher_logits/')"
    }

    # Training inputs given as gs:// in this bucket (--data, --base-model, --teacher folders are
    # downloaded by listing their prefix): read-only, under inputs/.
    train_reads_inputs = {
      account     = "train"
      role        = "roles/storage.objectViewer"
      title       = "inputs-read-and-list"
      description = "Read objects under inputs/ and list that prefix."
      expression  = "(resource.type == 'storage.googleapis.com/Object' && resource.name.startsWith('projects/_/buckets/${google_storage_bucket.artifacts.name}/objects/inputs/')) || (resource.type == 'storage.googleapis.com/Bucket' && api.getAttribute('storage.googleapis.com/objectListPrefix', '').startsWith('inputs/'))"
    }

    # ---- monitor job

    # Reads models/production.json and the manifest and baseline.json of the bundle it names.
    monitor_reads_models = {
      account     = "monitor"
      role        = "roles/storage.objectViewer"
      title       = "models-read"
      description = "Read objects under models/."
      expression  = "resource.type == 'storage.googleapis.com/Object' && resource.name.startsWith('projects/_/buckets/${google_storage_bucket.artifacts.name}/objects/models/')"
    }

    # ---- function

    # Reads models/production.json and the files of the bundle it names (by name, never a listing).
    function_reads_models = {
      account     = "function"
      role        = "roles/storage.objectViewer"
      title       = "models-read"
      description = "Read objects under models/."
      expression  = "resource.type == 'storage.googleapis.com/Object' && resource.name.startsWith('projects/_/buckets/${google_storage_bucket.artifacts.name}/objects/models/')"
    }

    # Spills prediction rows BigQuery refused to dead_letter/ for replay: create only, so it can
    # neither read nor delete what is already there.
    function_spills_dead_letters = {
      account     = "function"
      role        = "roles/storage.objectCreator"
      title       = "dead-letter-create"
      description = "Create objects under dead_letter/."
      expression  = "resource.type == 'storage.googleapis.com/Object' && resource.name.startsWith('projects/_/buckets/${google_storage_bucket.artifacts.name}/objects/dead_letter/')"
    }

    # ---- dead-letter replay job

    # Lists pending files in dead_letter/, reads them, writes rejected-*.jsonl next to them and
    # moves replayed files to dead_letter/replayed/ (copy, then delete the original).
    replay_dead_letters = {
      account     = "replay"
      role        = "roles/storage.objectUser"
      title       = "dead-letter-read-write-list"
      description = "Read, write, delete and list objects under dead_letter/."
      expression  = "(resource.type == 'storage.googleapis.com/Object' && resource.name.startsWith('projects/_/buckets/${google_storage_bucket.artifacts.name}/objects/dead_letter/')) || (resource.type == 'storage.googleapis.com/Bucket' && api.getAttribute('storage.googleapis.com/objectListPrefix', '').startsWith('dead_letter/'))"
    }

    # ---- score job

    # Reads the input files: a file by name, a prefix or a glob by listing, under inputs/ only.
    score_reads_inputs = {
      account     = "score"
      role        = "roles/storage.objectViewer"
      title       = "inputs-read-and-list"
      description = "Read objects under inputs/ and list that prefix."
      expression  = "(resource.type == 'storage.googleapis.com/Object' && resource.name.startsWith('projects/_/buckets/${google_storage_bucket.artifacts.name}/objects/inputs/')) || (resource.type == 'storage.googleapis.com/Bucket' && api.getAttribute('storage.googleapis.com/objectListPrefix', '').startsWith('inputs/'))"
    }

    # Reads models/production.json and the files of the bundle it names (by name, never a listing).
    score_reads_models = {
      account     = "score"
      role        = "roles/storage.objectViewer"
      title       = "models-read"
      description = "Read objects under models/."
      expression  = "resource.type == 'storage.googleapis.com/Object' && resource.name.startsWith('projects/_/buckets/${google_storage_bucket.artifacts.name}/objects/models/')"
    }

    # Creates its shards, rejects, plan and load records under scores/ (each once: create only, so a
    # rerun can neither overwrite nor delete a finished shard).
    score_writes_scores = {
      account     = "score"
      role        = "roles/storage.objectCreator"
      title       = "scores-create"
      description = "Create objects under scores/."
      expression  = "resource.type == 'storage.googleapis.com/Object' && resource.name.startsWith('projects/_/buckets/${google_storage_bucket.artifacts.name}/objects/scores/')"
    }

    # Reads them back: a rerun checks what an earlier run finished, and the load job reads the shard
    # with the job's identity.
    score_reads_scores = {
      account     = "score"
      role        = "roles/storage.objectViewer"
      title       = "scores-read"
      description = "Read objects under scores/."
      expression  = "resource.type == 'storage.googleapis.com/Object' && resource.name.startsWith('projects/_/buckets/${google_storage_bucket.artifacts.name}/objects/scores/')"
    }
  }
}

resource "google_storage_bucket_iam_member" "artifacts" {
  for_each = local.artifact_store_grants

  bucket = google_storage_bucket.artifacts.name
  role   = each.value.role
  member = google_service_account.accounts[each.value.account].member
  condition {
    title       = each.value.title
    description = each.value.description
    expression  = each.value.expression
  }
}

# ---------------------------------------------------------------- project level

locals {
  # Only roles Google grants at project level alone (tools/tfcheck's allow-list says why).
  project_level_grants = {
    # Running a query creates a BigQuery job, and jobs belong to a project: this role cannot be
    # bound on a dataset. It grants bigquery.jobs.create only; the data stays governed by the
    # dataset access block (the monitor is a READER there, see bigquery.tf).
    monitor_query_jobs = {
      account = "monitor"
      role    = "roles/bigquery.jobUser"
    }
    # The replay's lookup query is a BigQuery job too (see monitor_query_jobs).
    replay_query_jobs = {
      account = "replay"
      role    = "roles/bigquery.jobUser"
    }
    # A load job is a BigQuery job (see monitor_query_jobs).
    score_load_jobs = {
      account = "score"
      role    = "roles/bigquery.jobUser"
    }
    # Build logs are written to the project's log buckets; Logging has no narrower resource to
    # bind on.
    build_logs = {
      account = "build"
      role    = "roles/logging.logWriter"
    }
  }
}

resource "google_project_iam_member" "project_level" {
  for_each = local.project_level_grants

  project = var.project
  role    = each.value.role
  member  = google_service_account.accounts[each.value.account].member
}

# ---------------------------------------------------------------- BigQuery tables

locals {
  table_grants = {
    # The monitor streams the production bundle's baseline.json (before each drift check) into
    # these two tables.
    monitor_inserts_baselines = {
      account = "monitor"
      table   = google_bigquery_table.baselines
      role    = google_project_iam_custom_role.table_row_inserter.name
    }
    monitor_inserts_baseline_bins = {
      account = "monitor"
      table   = google_bigquery_table.baseline_bins
      role    = google_project_iam_custom_role.table_row_inserter.name
    }
    # The replay inserts the rows that are not in the log yet.
    replay_inserts_predictions = {
      account = "replay"
      table   = google_bigquery_table.predictions
      role    = google_project_iam_custom_role.table_row_inserter.name
    }
    # The replay finds which rows of a file are already in the log (one query per file), so a
    # replay never duplicates a row: read access to this one table, no other.
    replay_reads_predictions = {
      account = "replay"
      table   = google_bigquery_table.predictions
      role    = "roles/bigquery.dataViewer"
    }
    # The score job appends shards to the scores table with load jobs; it cannot read or change
    # the rows.
    score_loads_scores = {
      account = "score"
      table   = google_bigquery_table.scores
      role    = google_project_iam_custom_role.table_loader.name
    }
  }
}

resource "google_bigquery_table_iam_member" "tables" {
  for_each = local.table_grants

  dataset_id = each.value.table.dataset_id
  table_id   = each.value.table.table_id
  role       = each.value.role
  member     = google_service_account.accounts[each.value.account].member
}

# The function streams prediction rows into the log table (insertAll); it cannot read or delete
# them. Only with function_prediction_log = "bigquery": on stdout the Logging sink writes the rows.
resource "google_bigquery_table_iam_member" "function_inserts_predictions" {
  count = local.log_via_stdout ? 0 : 1

  dataset_id = google_bigquery_table.predictions.dataset_id
  table_id   = google_bigquery_table.predictions.table_id
  role       = google_project_iam_custom_role.table_row_inserter.name
  member     = google_service_account.accounts["function"].member
}

# ---------------------------------------------------------------- Cloud Run jobs

locals {
  # run.invoker on one job: run.jobs.run (execute) and nothing else of the project's jobs.
  job_invoker_grants = {
    # On drift, the monitor's RETRAIN_COMMAND executes the train job.
    monitor_starts_training = {
      account = "monitor"
      job     = "train"
    }
    scheduler_runs_monitor = {
      account = "scheduler"
      job     = "monitor"
    }
    scheduler_runs_score = {
      account = "scheduler"
      job     = "score"
    }
    scheduler_runs_replay = {
      account = "scheduler"
      job     = "replay"
    }
  }
}

resource "google_cloud_run_v2_job_iam_member" "invokers" {
  for_each = local.job_invoker_grants

  location = google_cloud_run_v2_job.jobs[each.value.job].location
  name     = google_cloud_run_v2_job.jobs[each.value.job].name
  role     = "roles/run.invoker"
  member   = google_service_account.accounts[each.value.account].member
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
  member  = google_service_account.accounts["build"].member
  condition {
    title       = "function-source-read"
    description = "Read this function's source in the Cloud Functions source bucket."
    expression  = "resource.type == 'storage.googleapis.com/Object' && resource.name.startsWith('projects/_/buckets/gcf-v2-sources-${data.google_project.this.number}-${var.region}/objects/${local.function_name}/')"
  }
}

# Pushes the built image (and the buildpacks cache image) to the function builds repository only;
# it cannot touch the jobs image the jobs run.
resource "google_artifact_registry_repository_iam_member" "build_pushes_function_image" {
  location   = google_artifact_registry_repository.function_builds.location
  repository = google_artifact_registry_repository.function_builds.name
  role       = "roles/artifactregistry.writer"
  member     = google_service_account.accounts["build"].member
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
