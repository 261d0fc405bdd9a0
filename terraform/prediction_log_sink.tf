# The prediction log's production path: each row is durable before the function's response leaves.
#
# The function writes every row as one JSON line on stdout (PREDICTION_LOG=stdout), flushed before
# it answers. Cloud Run hands stdout to Cloud Logging as it is written, so the row no longer depends
# on the instance: a crash, an out-of-memory kill or the shutdown after SIGTERM cannot lose it. A
# background thread inserting into BigQuery could: Cloud Run only gives the instance CPU while a
# request is being served, so after the last response of a burst the thread may never run again.
# The alternative, CPU always allocated (the service's cpu_idle = false), is billed for the
# instance's whole lifetime instead of per request, and still loses the buffer on a kill.
#
# This file: the Logging sink routing exactly those lines into a dataset of their own, the table it
# writes (created here so the view below can exist before the first line), the sink's right to
# write there, and the view prediction_log_rows, which reads those entries back in the contract's
# shape together with rows inserted into the predictions table (replays), each row once. The
# dashboard views and the monitor job read that view (${predictions} in sql/views).
# function_prediction_log = "bigquery" goes back to streaming inserts and drops all of this.

variable "function_prediction_log" {
  description = "How the function logs predictions: stdout (a JSON line per row, routed into BigQuery by a Cloud Logging sink; durable before the response) or bigquery (streaming inserts from a background thread, which Cloud Run's CPU throttling can starve after the last response)."
  type        = string
  default     = "stdout"

  validation {
    condition     = contains(["stdout", "bigquery"], var.function_prediction_log)
    error_message = "function_prediction_log: stdout or bigquery."
  }
}

locals {
  log_via_stdout = var.function_prediction_log == "stdout"

  # The function's PREDICTION_LOG.
  function_prediction_log = local.log_via_stdout ? "stdout" : local.prediction_log

  prediction_log_sink_dataset = "${replace(var.name_prefix, "-", "_")}_prediction_log_sink"
  # The table Cloud Logging writes entries of the log run.googleapis.com/stdout to (partitioned
  # tables: the log name with non-alphanumerics as underscores, no date suffix).
  stdout_entries_table = "run_googleapis_com_stdout"

  # The function's row lines: its service, its stdout, and the message every row line carries
  # (prediction_log.sinks.StdoutSink). Other output of the function stays out of the table.
  prediction_log_lines = join(" AND ", [
    "resource.type = \"cloud_run_revision\"",
    "resource.labels.service_name = \"${local.function_name}\"",
    "logName = \"projects/${var.project}/logs/run.googleapis.com%2Fstdout\"",
    "jsonPayload.message = \"prediction_log_row\"",
  ])

  # What the dashboard views and the monitor read: every log row, each row_id once
  # (monitoring/_sql.py view_params): the view over the routed lines and the table, or with
  # function_prediction_log = "bigquery" the view over the table alone (inserted_rows below).
  prediction_log_rows = "prediction_log_rows"
}

# A dataset of its own: the sink's writer identity gets write access to these log entries only,
# never to the predictions table or the baselines.
#
# Who may read it. Without access entries BigQuery makes every project Viewer a READER and every
# Editor a WRITER, and with log_text on the entries hold raw user texts. This list replaces those
# defaults: project Owners, the sink's writer identity (write only) and the monitoring dataset's
# views (an authorized dataset, so whoever may read the dashboards or run the monitor needs no
# right here). Roles granted on the project itself (bigquery.admin, ...) still apply. The list is
# authoritative, so it is written here and not as google_bigquery_dataset_access resources, which
# it would remove on the next apply.
resource "google_bigquery_dataset" "prediction_log_sink" {
  #checkov:skip=CKV_GCP_81:Same data as the prediction log (see CKV_GCP_81 on the monitoring dataset): Google-managed encryption.
  count = local.log_via_stdout ? 1 : 0

  dataset_id  = local.prediction_log_sink_dataset
  location    = local.bq_location
  description = "fakenews-detector: prediction-log lines routed from the function's stdout by a Cloud Logging sink; read through the view prediction_log_rows."

  delete_contents_on_destroy = !var.deletion_protection

  access {
    role          = "OWNER"
    special_group = "projectOwners"
  }

  # The sink's writer identity may write entries here, and only here.
  access {
    role          = "WRITER"
    user_by_email = trimprefix(google_logging_project_sink.prediction_log[0].writer_identity, "serviceAccount:")
  }

  access {
    dataset {
      dataset {
        project_id = var.project
        dataset_id = google_bigquery_dataset.monitoring.dataset_id
      }
      target_types = ["VIEWS"]
    }
  }

  depends_on = [google_project_service.apis]
}

# Created before any line arrives so that prediction_log_rows can be created with it. Logging
# writes into an existing table of the expected name and adds the columns of the other LogEntry
# fields itself, hence ignore_changes on the schema (Terraform would otherwise drop them, which
# replaces the table).
resource "google_bigquery_table" "stdout_entries" {
  #checkov:skip=CKV_GCP_80:See CKV_GCP_81 on the dataset: Google-managed encryption.
  count = local.log_via_stdout ? 1 : 0

  dataset_id          = google_bigquery_dataset.prediction_log_sink[0].dataset_id
  table_id            = local.stdout_entries_table
  description         = "Cloud Logging entries of the function's prediction-log lines (columns: sql/logging/stdout_entries.schema.json, then whatever Logging adds)."
  schema              = file("${local.sql_dir}/logging/stdout_entries.schema.json")
  deletion_protection = var.deletion_protection

  # What use_partitioned_tables makes: day partitions on the entry's timestamp.
  time_partitioning {
    type          = "DAY"
    field         = "timestamp"
    expiration_ms = var.prediction_log_partition_expiration_days == null ? null : var.prediction_log_partition_expiration_days * 86400000
  }

  lifecycle {
    ignore_changes = [schema]
  }
}

resource "google_logging_project_sink" "prediction_log" {
  count = local.log_via_stdout ? 1 : 0

  name        = "${var.name_prefix}-prediction-log"
  description = "Prediction-log rows (PREDICTION_LOG=stdout lines of the prediction function) into BigQuery."
  # By name, not through the dataset resource: the dataset's access list names this sink's writer
  # identity, so the sink is created first (it exports nothing until the table exists).
  destination = "bigquery.googleapis.com/projects/${var.project}/datasets/${local.prediction_log_sink_dataset}"

  filter = local.prediction_log_lines

  unique_writer_identity = true

  bigquery_options {
    use_partitioned_tables = true
  }
}

# The row lines are not also kept in the _Default log bucket: there anyone with
# logging.viewer (project Viewers among them) could read them for its 30 days, raw texts included
# when log_text is on, past the dataset's access list. An exclusion on the project applies to the
# _Default sink only; the sink above still routes every line. Rows that reach Cloud Logging only
# as PREDICTION_LOG_DEAD_ROW lines (stderr) are not excluded: replay-dead-rows reads them there.
resource "google_logging_project_exclusion" "prediction_log_lines" {
  count = local.log_via_stdout ? 1 : 0

  name        = "${var.name_prefix}-prediction-log-lines"
  description = "Prediction-log row lines go only to the prediction-log dataset (its access list), not to the _Default bucket."
  filter      = local.prediction_log_lines
}

resource "google_bigquery_table" "prediction_log_rows" {
  #checkov:skip=CKV_GCP_80:Views store no data; encryption applies to the tables they read.
  #checkov:skip=CKV_GCP_121:A view holds no data (recreating it loses nothing).
  count = local.log_via_stdout ? 1 : 0

  dataset_id          = google_bigquery_dataset.monitoring.dataset_id
  table_id            = "prediction_log_rows"
  description         = "Every prediction-log row in the shape of packages/prediction_log/prediction_log/prediction_log.schema.json, each once: the stdout lines routed by Cloud Logging and the rows inserted into predictions (sql/logging/prediction_log_rows.sql)."
  deletion_protection = false # a view holds no data; recreating it loses nothing

  view {
    query = templatefile("${local.sql_dir}/logging/prediction_log_rows.sql", {
      dataset     = "${var.project}.${local.dataset_id}"
      log_entries = "`${var.project}.${google_bigquery_dataset.prediction_log_sink[0].dataset_id}.${google_bigquery_table.stdout_entries[0].table_id}`"
    })
    use_legacy_sql = false
  }

  depends_on = [google_bigquery_table.predictions]
}

# With function_prediction_log = "bigquery" the rows are only in the predictions table, where a
# streaming insert retried after a timeout or two replays at once can leave two copies of a row
# (BigQuery drops repeated insert ids only on a best-effort basis): the views read it through
# this view, which keeps one copy of each row_id (sql/logging/inserted_rows.sql).
resource "google_bigquery_table" "inserted_rows" {
  #checkov:skip=CKV_GCP_80:Views store no data; encryption applies to the tables they read.
  #checkov:skip=CKV_GCP_121:A view holds no data (recreating it loses nothing).
  count = local.log_via_stdout ? 0 : 1

  dataset_id          = google_bigquery_dataset.monitoring.dataset_id
  table_id            = "prediction_log_rows"
  description         = "Every prediction-log row of the predictions table in the shape of packages/prediction_log/prediction_log/prediction_log.schema.json, each row_id once (sql/logging/inserted_rows.sql)."
  deletion_protection = false # a view holds no data; recreating it loses nothing

  view {
    query = templatefile("${local.sql_dir}/logging/inserted_rows.sql", {
      dataset = "${var.project}.${local.dataset_id}"
    })
    use_legacy_sql = false
  }

  depends_on = [google_bigquery_table.predictions]
}
