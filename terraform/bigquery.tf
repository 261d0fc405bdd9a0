# BigQuery: the prediction log, the training baselines and the dashboard views.
# Every schema and query is read from sql/ (owned by the monitoring part), never repeated here.

locals {
  sql_dir = "${path.module}/../sql"

  # One view per sql/views/<name>.sql; the file names are the view names Looker Studio points at.
  view_files = fileset("${local.sql_dir}/views", "*.sql")

  # The placeholders of sql/views (sql/README.md; monitoring/_sql.py view_params says the same):
  # ${dataset} = project.dataset, ${predictions} = every log row, each row_id once: the view
  # prediction_log_rows (prediction_log_sink.tf), over the routed stdout lines and the predictions
  # table, or over the table alone when the function inserts into BigQuery itself.
  sql_base_vars = {
    dataset     = "${var.project}.${local.dataset_id}"
    predictions = "`${var.project}.${local.dataset_id}.${local.prediction_log_rows}`"
  }
  # daily_drift inlines daily_histograms' query over the same rows, so the bins are defined once.
  sql_vars = merge(local.sql_base_vars, {
    daily_histograms = templatefile("${local.sql_dir}/views/daily_histograms.sql", local.sql_base_vars)
  })
}

resource "google_bigquery_dataset" "monitoring" {
  #checkov:skip=CKV_GCP_81:Rows hold hashes, scores and counts (texts only with LOG_TEXT on, readable only by the dataset's access list); Google-managed encryption is enough, a CMEK key would outlive `terraform destroy`.
  dataset_id  = local.dataset_id
  location    = local.bq_location
  description = "fakenews-detector: prediction log, training baselines and dashboard views."

  delete_contents_on_destroy = !var.deletion_protection

  # Who may read the dataset. Without access entries BigQuery gives every project Viewer READER
  # and every Editor WRITER, and with log_text on the log holds raw user texts; this list
  # replaces those defaults (IAM roles granted at project level, such as bigquery.admin, still
  # apply). The workloads write through table-level grants (iam.tf). Being authoritative, it
  # cannot be combined with google_bigquery_dataset_iam_* resources on this dataset.
  access {
    role          = "OWNER"
    special_group = "projectOwners"
  }

  # The monitor's drift queries read the views, the log and the baselines.
  access {
    role          = "READER"
    user_by_email = google_service_account.accounts["monitor"].email
  }

  # People who build dashboards on the views (Looker Studio reads with the viewer's identity).
  dynamic "access" {
    for_each = toset(var.dataset_reader_groups)
    content {
      role           = "READER"
      group_by_email = access.value
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_bigquery_table" "predictions" {
  #checkov:skip=CKV_GCP_80:See CKV_GCP_81 on the dataset: Google-managed encryption.
  dataset_id          = google_bigquery_dataset.monitoring.dataset_id
  table_id            = local.predictions_table
  description         = "One row per predicted instance (schema: packages/prediction_log/prediction_log/prediction_log.schema.json)."
  schema              = file("${path.module}/../packages/prediction_log/prediction_log/prediction_log.schema.json")
  deletion_protection = var.deletion_protection

  # Dashboards and drift queries always filter on a time window: daily partitions on ts keep
  # them cheap, clustering by model_version serves the per-version views.
  time_partitioning {
    type          = "DAY"
    field         = "ts"
    expiration_ms = var.prediction_log_partition_expiration_days == null ? null : var.prediction_log_partition_expiration_days * 86400000
  }
  clustering = ["model_version"]
}

# Training baselines, one row per bundle; `python -m monitoring monitor` loads the production
# bundle's baseline.json here (and its histograms into baseline_bins) before the drift queries.
resource "google_bigquery_table" "baselines" {
  #checkov:skip=CKV_GCP_80:See CKV_GCP_81 on the dataset: Google-managed encryption.
  dataset_id          = google_bigquery_dataset.monitoring.dataset_id
  table_id            = local.baselines_table
  description         = "Validation-set baselines published with each bundle (schema: sql/baselines.schema.json)."
  schema              = file("${local.sql_dir}/baselines.schema.json")
  deletion_protection = var.deletion_protection
}

resource "google_bigquery_table" "baseline_bins" {
  #checkov:skip=CKV_GCP_80:See CKV_GCP_81 on the dataset: Google-managed encryption.
  dataset_id          = google_bigquery_dataset.monitoring.dataset_id
  table_id            = local.baseline_bins_table
  description         = "Baseline histograms, one row per bin (schema: sql/baseline_bins.schema.json)."
  schema              = file("${local.sql_dir}/baseline_bins.schema.json")
  clustering          = ["model_version"]
  deletion_protection = var.deletion_protection
}

resource "google_bigquery_table" "views" {
  #checkov:skip=CKV_GCP_80:Views store no data; encryption applies to the tables they read.
  #checkov:skip=CKV_GCP_121:A view holds no data (recreating it loses nothing); protection would block removing a view file from sql/views.
  for_each = local.view_files

  dataset_id          = google_bigquery_dataset.monitoring.dataset_id
  table_id            = trimsuffix(each.value, ".sql")
  description         = "Dashboard view from sql/views/${each.value}."
  deletion_protection = false # a view holds no data; recreating it loses nothing

  view {
    query          = templatefile("${local.sql_dir}/views/${each.value}", local.sql_vars)
    use_legacy_sql = false
  }

  depends_on = [
    google_bigquery_table.predictions,
    google_bigquery_table.prediction_log_rows,
    google_bigquery_table.inserted_rows,
    google_bigquery_table.baselines,
    google_bigquery_table.baseline_bins,
  ]
}

# Batch scores, one row per scored input row and model version; the score job appends each
# Parquet shard with one load job (schema: sql/scores.schema.json).
resource "google_bigquery_table" "scores" {
  #checkov:skip=CKV_GCP_80:See CKV_GCP_81 on the dataset: Google-managed encryption.
  dataset_id          = google_bigquery_dataset.monitoring.dataset_id
  table_id            = local.scores_table
  description         = "Batch scores from the score job (schema: sql/scores.schema.json)."
  schema              = file("${local.sql_dir}/scores.schema.json")
  deletion_protection = var.deletion_protection

  # Reads pick a scoring run (by day) and a model version or input.
  time_partitioning {
    type  = "DAY"
    field = "scored_at"
  }
  clustering = ["model_version", "input_id"]
}
