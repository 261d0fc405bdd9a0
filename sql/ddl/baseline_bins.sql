-- The baseline histograms in long form (one row per bin), so PSI is a join on plain columns
-- that translates to DuckDB unchanged (array offsets do not: UNNEST WITH OFFSET is 0-based on
-- BigQuery and becomes 1-based WITH ORDINALITY on DuckDB).
-- Columns must match sql/baseline_bins.schema.json. Placeholder: ${dataset} (see sql/README.md).
CREATE TABLE IF NOT EXISTS `${dataset}.baseline_bins` (
  model_version STRING NOT NULL,
  distribution STRING NOT NULL,
  bin_index INT64 NOT NULL,
  bin_lower FLOAT64 NOT NULL,
  bin_upper FLOAT64 NOT NULL,
  upper_inclusive BOOL NOT NULL,
  proportion FLOAT64 NOT NULL
)
CLUSTER BY model_version
OPTIONS (description = 'Baseline histograms (score, token_length) per model version');
