-- Training baselines, one row per bundle (model_version); the histograms are in baseline_bins.
-- Columns must match sql/baselines.schema.json. Placeholder: ${dataset} (see sql/README.md).
CREATE TABLE IF NOT EXISTS `${dataset}.baselines` (
  model_version STRING NOT NULL,
  created_at TIMESTAMP NOT NULL,
  loaded_at TIMESTAMP NOT NULL,
  n INT64,
  fake_ratio FLOAT64,
  truncation_rate FLOAT64,
  baseline_json STRING NOT NULL
)
OPTIONS (description = 'Validation-set baselines published with each model bundle (baseline.json)');
