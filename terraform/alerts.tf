# Prediction rows that did not reach BigQuery must be noticed. The function logs one line starting
# with PREDICTION_LOG_SPILL for every file it writes to the dead letter (retries run out, the
# buffer overflowed, a row no backend takes) and, when even that fails, one PREDICTION_LOG_DEAD_ROW
# line per row on stderr (packages/prediction_log/prediction_log/logger.py, spill_line and
# PredictionLogger._spill). Both are plain stderr text (textPayload); jsonPayload.message covers
# them if that logger is ever given the function's JSON formatter.
# tests/monitoring/test_dead_letter_alert.py runs the logger's real output through this filter.

resource "google_logging_metric" "dead_letters" {
  name        = "${var.name_prefix}-prediction-log-dead-letters"
  description = "Prediction-log spills to the dead letter (one per file) and rows lost to stderr (one per row), from ${local.function_name}."
  filter = join(" AND ", [
    "resource.type=\"cloud_run_revision\"",
    "resource.labels.service_name=\"${local.function_name}\"",
    "(textPayload:\"PREDICTION_LOG_SPILL\" OR textPayload:\"PREDICTION_LOG_DEAD_ROW\" OR jsonPayload.message:\"PREDICTION_LOG_SPILL\" OR jsonPayload.message:\"PREDICTION_LOG_DEAD_ROW\")",
  ])

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "Prediction-log dead letters"
    labels {
      key         = "kind"
      value_type  = "STRING"
      description = "PREDICTION_LOG_SPILL (a dead-letter file was written) or PREDICTION_LOG_DEAD_ROW (a row only on stderr)."
    }
  }

  label_extractors = {
    kind = "REGEXP_EXTRACT(textPayload, \"(PREDICTION_LOG_SPILL|PREDICTION_LOG_DEAD_ROW)\")"
  }
}

# Any spill opens an incident: the scheduled replay job should load the rows within the hour;
# PREDICTION_LOG_DEAD_ROW rows are only in Cloud Logging and need a person.
resource "google_monitoring_alert_policy" "dead_letters" {
  display_name = "${var.name_prefix}: prediction rows in the dead letter"
  combiner     = "OR"

  conditions {
    display_name = "dead-letter spill or dead row in the last 5 minutes"
    condition_threshold {
      filter          = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.dead_letters.name}\" AND resource.type=\"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["metric.label.kind"]
      }
      trigger {
        count = 1
      }
    }
  }

  # Empty: the incident is only visible in Cloud Monitoring.
  notification_channels = var.alert_notification_channels

  alert_strategy {
    auto_close = "86400s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = <<-EOT
      Prediction-log rows did not reach `${local.prediction_log}`.

      - `PREDICTION_LOG_SPILL`: the rows are in `${local.dead_letter_uri}/`. The Cloud Run job
        `${google_cloud_run_v2_job.jobs["replay"].name}` loads them every hour (`${var.replay_schedule}`);
        run it now with `gcloud run jobs execute ${google_cloud_run_v2_job.jobs["replay"].name} --region ${var.region}`.
        Rows BigQuery rejects as invalid are set aside as `rejected-*.jsonl` there.
      - `PREDICTION_LOG_DEAD_ROW`: the dead letter could not be written either; each row is only in
        the function's log line (JSON after the marker).
    EOT
  }
}

# The stdout path has two hops after the function: stdout -> Cloud Logging, Cloud Logging ->
# BigQuery (the sink). Neither writes a line the function could see, so each is watched here.

# Cloud Logging -> BigQuery: entries the sink failed to write (the dataset gone, its access list
# without the writer identity, a schema the table refuses) are counted by Logging itself.
resource "google_monitoring_alert_policy" "prediction_log_sink_errors" {
  count = local.log_via_stdout ? 1 : 0

  display_name = "${var.name_prefix}: prediction-log sink cannot write to BigQuery"
  combiner     = "OR"

  conditions {
    display_name = "log entries the prediction-log sink failed to export, last 10 minutes"
    condition_threshold {
      filter          = "metric.type=\"logging.googleapis.com/exports/error_count\" AND resource.type=\"logging_sink\" AND resource.label.name=\"${google_logging_project_sink.prediction_log[0].name}\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period     = "600s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }
      trigger {
        count = 1
      }
    }
  }

  notification_channels = var.alert_notification_channels

  alert_strategy {
    auto_close = "86400s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = <<-EOT
      The Logging sink `${google_logging_project_sink.prediction_log[0].name}` could not write
      prediction-log lines into `${local.prediction_log_sink_dataset}`. Those rows are not in
      BigQuery: `gcloud logging sinks describe ${google_logging_project_sink.prediction_log[0].name}`
      shows the error. Lines the sink could not export are not retried by Logging; rows still in
      the _Default bucket's retention cannot be recovered from there either (the exclusion
      `${google_logging_project_exclusion.prediction_log_lines[0].name}` keeps them out of it).
    EOT
  }
}

# stdout -> Cloud Logging, reconciled: every POST the function answered with 200 logs one row with
# instance_index 0 that is not a shadow row (shadow rows are a candidate's extra scores of the
# same request). The counter of such lines, as Logging received them, is compared with the
# counter of those answers in Cloud Run's request log (GET, the readiness probe, logs no row, so
# Cloud Run's request_count metric, which has no method label, would not do). Fewer lines than
# answers means rows that never reached Logging (a stdout write that failed went to the dead
# letter, which its own alert reports).
resource "google_logging_metric" "prediction_requests_answered" {
  count = local.log_via_stdout ? 1 : 0

  name        = "${var.name_prefix}-prediction-requests-answered"
  description = "POST requests ${local.function_name} answered with 200, from Cloud Run's request log."
  filter = join(" AND ", [
    "resource.type = \"cloud_run_revision\"",
    "resource.labels.service_name = \"${local.function_name}\"",
    "logName = \"projects/${var.project}/logs/run.googleapis.com%2Frequests\"",
    "httpRequest.requestMethod = \"POST\"",
    "httpRequest.status = 200",
  ])

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "Prediction requests answered"
  }
}

resource "google_logging_metric" "prediction_log_first_rows" {
  count = local.log_via_stdout ? 1 : 0

  name        = "${var.name_prefix}-prediction-log-first-rows"
  description = "Prediction-log row lines of instance 0, not shadow, received by Cloud Logging from ${local.function_name}: one per answered request."
  filter = join(" AND ", [
    local.prediction_log_lines,
    "jsonPayload.prediction_log_row:\"\\\"instance_index\\\":0,\"",
    "NOT jsonPayload.prediction_log_row:\"\\\"shadow\\\":true\"",
  ])

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "Prediction-log first rows"
  }
}

resource "google_monitoring_alert_policy" "prediction_log_reconciliation" {
  count = local.log_via_stdout ? 1 : 0

  display_name = "${var.name_prefix}: fewer prediction-log rows than answered requests"
  combiner     = "OR"

  conditions {
    display_name = "first rows / answered POSTs below 0.99 over an hour"
    condition_threshold {
      filter                  = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.prediction_log_first_rows[0].name}\" AND resource.type=\"cloud_run_revision\""
      denominator_filter      = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.prediction_requests_answered[0].name}\" AND resource.type=\"cloud_run_revision\""
      comparison              = "COMPARISON_LT"
      threshold_value         = 0.99
      duration                = "0s"
      evaluation_missing_data = "EVALUATION_MISSING_DATA_INACTIVE"
      aggregations {
        alignment_period     = "3600s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }
      denominator_aggregations {
        alignment_period     = "3600s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }
      trigger {
        count = 1
      }
    }
  }

  notification_channels = var.alert_notification_channels

  alert_strategy {
    auto_close = "86400s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = <<-EOT
      In the last hour `${local.function_name}` answered more POSTs (200) than Cloud Logging
      received first prediction-log rows for. Look for `PREDICTION_LOG_SPILL` lines (rows in
      `${local.dead_letter_uri}/`, replayed hourly) and for stdout errors in the function's log.
      The view `prediction_log_rows` holds what reached BigQuery; the sink's own export errors
      have their own alert.
    EOT
  }
}
