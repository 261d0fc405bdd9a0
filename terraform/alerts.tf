# Prediction rows that did not reach BigQuery must be noticed. The function logs one line per
# spill to the dead letter and, when even that fails, one PREDICTION_LOG_DEAD_ROW line per row on
# stderr (packages/prediction_log/prediction_log/logger.py, PredictionLogger._spill). Both are
# plain stderr text (textPayload); jsonPayload.message covers a spill line if that logger is ever
# given the function's JSON formatter.

resource "google_logging_metric" "dead_letters" {
  name        = "${var.name_prefix}-prediction-log-dead-letters"
  description = "Prediction-log spills to the dead letter (one per file) and rows lost to stderr (one per row), from ${local.function_name}."
  filter = join(" AND ", [
    "resource.type=\"cloud_run_revision\"",
    "resource.labels.service_name=\"${local.function_name}\"",
    "(textPayload:\"PREDICTION_LOG_DEAD_ROW\" OR textPayload:\"rows spilled to\" OR jsonPayload.message:\"rows spilled to\")",
  ])

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "Prediction-log dead letters"
    labels {
      key         = "kind"
      value_type  = "STRING"
      description = "rows spilled (a dead-letter file was written) or PREDICTION_LOG_DEAD_ROW (a row only on stderr)."
    }
  }

  label_extractors = {
    kind = "REGEXP_EXTRACT(textPayload, \"(PREDICTION_LOG_DEAD_ROW|rows spilled)\")"
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

      - `rows spilled`: the rows are in `${local.dead_letter_uri}/`. The Cloud Run job
        `${google_cloud_run_v2_job.replay.name}` loads them every hour (`${var.replay_schedule}`);
        run it now with `gcloud run jobs execute ${google_cloud_run_v2_job.replay.name} --region ${var.region}`.
        Rows BigQuery rejects as invalid are set aside as `rejected-*.jsonl` there.
      - `PREDICTION_LOG_DEAD_ROW`: the dead letter could not be written either; each row is only in
        the function's log line (JSON after the marker).
    EOT
  }
}
