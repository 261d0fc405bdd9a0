-- prediction_log_rows: every row of the prediction log in the contract's shape
-- (packages/prediction_log/prediction_log/prediction_log.schema.json, same columns in the same order), whichever way it arrived:
--   * as a JSON line on the function's stdout (PREDICTION_LOG=stdout, the production default),
--     routed by the Cloud Logging sink of terraform/prediction_log_sink.tf into ${log_entries};
--   * inserted into `${dataset}.predictions` (PREDICTION_LOG=bq://, and every replay).
-- Each row once: Cloud Logging may deliver an entry twice, and a row may reach both places (a
-- stdout write that failed half-way is also spilled and replayed), so copies of one row_id are
-- dropped. ts is in the PARTITION BY (a row's copies share it) so that a filter on ts is pushed
-- below the window function and still prunes the table's day partitions.
-- ts of a logged row is the entry's timestamp, the column the sink's table is partitioned on:
-- the line's `time` field is the row's ts (StdoutSink), and Logging makes it the entry's
-- timestamp. So a filter on ts reaches the partition column of both tables and a one-hour
-- window reads one day's partitions, not the whole retention.
-- Rows inserted before row_id existed are keyed request_id-instance_index (their insert id).
-- The row travels as one JSON string (see StdoutSink): Logging would otherwise guess each
-- field's BigQuery type from the values it sees. Terraform creates this view when the function
-- logs to stdout; the dashboard views and the monitor then read it instead of the table.
WITH logged AS (
  SELECT
    JSON_VALUE(jsonPayload.prediction_log_row, '$.request_id') AS request_id,
    CAST(JSON_VALUE(jsonPayload.prediction_log_row, '$.instance_index') AS INT64) AS instance_index,
    timestamp AS ts,
    JSON_VALUE(jsonPayload.prediction_log_row, '$.model_version') AS model_version,
    JSON_VALUE(jsonPayload.prediction_log_row, '$.label') AS label,
    CAST(JSON_VALUE(jsonPayload.prediction_log_row, '$.fake_probability') AS FLOAT64) AS fake_probability,
    JSON_VALUE(jsonPayload.prediction_log_row, '$.text_sha256') AS text_sha256,
    CAST(JSON_VALUE(jsonPayload.prediction_log_row, '$.char_count') AS INT64) AS char_count,
    CAST(JSON_VALUE(jsonPayload.prediction_log_row, '$.token_count') AS INT64) AS token_count,
    CAST(JSON_VALUE(jsonPayload.prediction_log_row, '$.truncated') AS BOOL) AS truncated,
    CAST(JSON_VALUE(jsonPayload.prediction_log_row, '$.latency_ms') AS FLOAT64) AS latency_ms,
    CAST(JSON_VALUE(jsonPayload.prediction_log_row, '$.cold_start') AS BOOL) AS cold_start,
    CAST(JSON_VALUE(jsonPayload.prediction_log_row, '$.ood_score') AS FLOAT64) AS ood_score,
    CAST(JSON_VALUE(jsonPayload.prediction_log_row, '$.in_domain') AS BOOL) AS in_domain,
    JSON_VALUE(jsonPayload.prediction_log_row, '$.text') AS text,
    JSON_VALUE(jsonPayload.prediction_log_row, '$.row_id') AS row_id,
    JSON_VALUE(jsonPayload.prediction_log_row, '$.trace_id') AS trace_id,
    JSON_VALUE(jsonPayload.prediction_log_row, '$.nonfinite_columns') AS nonfinite_columns,
    CAST(JSON_VALUE(jsonPayload.prediction_log_row, '$.shadow') AS BOOL) AS shadow
  FROM ${log_entries}
  WHERE jsonPayload.message = 'prediction_log_row'
),
inserted AS (
  SELECT
    request_id,
    instance_index,
    ts,
    model_version,
    label,
    fake_probability,
    text_sha256,
    char_count,
    token_count,
    truncated,
    latency_ms,
    cold_start,
    ood_score,
    in_domain,
    text,
    COALESCE(row_id, CONCAT(request_id, '-', CAST(instance_index AS STRING))) AS row_id,
    trace_id,
    nonfinite_columns,
    shadow
  FROM `${dataset}.predictions`
),
copies AS (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY row_id, ts) AS copy_number
  FROM (
    SELECT * FROM inserted
    UNION ALL
    SELECT * FROM logged
  )
)
SELECT * EXCEPT (copy_number)
FROM copies
WHERE copy_number = 1
