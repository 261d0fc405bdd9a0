-- The prediction log: one row per predicted instance.
-- Columns must match packages/prediction_log/prediction_log/prediction_log.schema.json (tests/monitoring/test_sql_contract.py checks it).
-- Placeholder: ${dataset} = `project.dataset` on BigQuery (see sql/README.md).
-- Day partitions keep dashboard and drift queries to the days they read; clustering by
-- model_version makes per-version filters (comparisons, PSI per bundle) cheap.
CREATE TABLE IF NOT EXISTS `${dataset}.predictions` (
  request_id STRING NOT NULL,
  instance_index INT64 NOT NULL,
  ts TIMESTAMP NOT NULL,
  model_version STRING NOT NULL,
  label STRING NOT NULL,
  fake_probability FLOAT64 NOT NULL,
  text_sha256 STRING NOT NULL,
  char_count INT64 NOT NULL,
  token_count INT64 NOT NULL,
  truncated BOOL NOT NULL,
  latency_ms FLOAT64 NOT NULL,
  cold_start BOOL NOT NULL,
  ood_score FLOAT64,
  in_domain BOOL,
  text STRING,
  -- Added after the first release, hence at the end and NULLABLE (an existing table gains them
  -- in place); row_id is always set by the writer and is the row's key.
  row_id STRING,
  trace_id STRING,
  nonfinite_columns STRING,
  shadow BOOL
)
PARTITION BY DATE(ts)
CLUSTER BY model_version
OPTIONS (description = 'fakenews-detector prediction log, one row per predicted instance');
