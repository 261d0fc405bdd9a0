-- window_drift: daily_drift's numbers over an arbitrary time window [${start}, ${end}) instead of
-- a calendar day; `python -m monitoring monitor` runs it. ${start} and ${end} are UTC timestamps
-- written as 'YYYY-MM-DD HH:MM:SS+00:00' (whole seconds) by monitoring, never user text.
-- Keep in step with sql/views/daily_drift.sql (a test checks both agree over a whole day).
WITH live AS (
  SELECT model_version, fake_probability, token_count, truncated, label, in_domain
  FROM `${dataset}.predictions`
  WHERE ts >= TIMESTAMP '${start}' AND ts < TIMESTAMP '${end}'
),
live_totals AS (
  SELECT
    model_version,
    COUNT(*) AS n_predictions,
    AVG(IF(label = 'fake', 1.0, 0.0)) AS fake_rate,
    AVG(IF(truncated, 1.0, 0.0)) AS truncation_rate,
    AVG(token_count) AS mean_token_count,
    SAFE_DIVIDE(SUM(IF(in_domain = FALSE, 1, 0)), COUNTIF(in_domain IS NOT NULL)) AS ood_share
  FROM live
  GROUP BY model_version
),
live_values AS (
  SELECT model_version, 'score' AS distribution, fake_probability AS value FROM live
  UNION ALL
  SELECT model_version, 'token_length' AS distribution, CAST(token_count AS FLOAT64) AS value
  FROM live
),
live_binned AS (
  SELECT v.model_version, b.distribution, b.bin_index, COUNT(*) AS n_live
  FROM live_values AS v
  JOIN `${dataset}.baseline_bins` AS b
    ON b.model_version = v.model_version
    AND b.distribution = v.distribution
    AND v.value >= b.bin_lower
    AND (v.value < b.bin_upper OR (b.upper_inclusive AND v.value = b.bin_upper))
  GROUP BY v.model_version, b.distribution, b.bin_index
),
psi_terms AS (
  SELECT
    t.model_version,
    b.distribution,
    GREATEST(COALESCE(c.n_live, 0) / t.n_predictions, 0.0001) AS live_share,
    GREATEST(b.proportion, 0.0001) AS baseline_share
  FROM live_totals AS t
  JOIN `${dataset}.baseline_bins` AS b
    ON b.model_version = t.model_version
  LEFT JOIN live_binned AS c
    ON c.model_version = t.model_version
    AND c.distribution = b.distribution
    AND c.bin_index = b.bin_index
),
psi AS (
  SELECT
    model_version,
    SUM(IF(distribution = 'score', (live_share - baseline_share) * LN(live_share / baseline_share), NULL)) AS score_psi,
    SUM(IF(distribution = 'token_length', (live_share - baseline_share) * LN(live_share / baseline_share), NULL)) AS token_length_psi
  FROM psi_terms
  GROUP BY model_version
)
SELECT
  t.model_version,
  t.n_predictions,
  p.score_psi,
  p.token_length_psi,
  t.fake_rate,
  base.fake_ratio AS baseline_fake_rate,
  t.truncation_rate,
  base.truncation_rate AS baseline_truncation_rate,
  t.mean_token_count,
  t.ood_share
FROM live_totals AS t
LEFT JOIN psi AS p
  ON p.model_version = t.model_version
LEFT JOIN `${dataset}.baselines` AS base
  ON base.model_version = t.model_version
