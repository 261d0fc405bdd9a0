-- inserted_rows: the view prediction_log_rows when the function inserts its rows into BigQuery
-- itself (PREDICTION_LOG=bq://, Terraform's function_prediction_log = "bigquery"): the
-- predictions table in the contract's shape, each row_id once. Copies are possible there: a
-- streaming insert retried after a timeout, a replay racing another, and BigQuery drops a repeated
-- insert id only on a best-effort basis. Same dedupe as logging/prediction_log_rows.sql: ts is
-- in the PARTITION BY (a row's copies share it), so a filter on ts is pushed below the window
-- function and still prunes the table's day partitions.
-- Rows inserted before row_id existed are keyed request_id-instance_index (their insert id).
WITH inserted AS (
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
  FROM inserted
)
SELECT * EXCEPT (copy_number)
FROM copies
WHERE copy_number = 1
