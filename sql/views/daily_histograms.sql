-- daily_histograms: live vs baseline share per bin, per model version, day and distribution
-- ('score' = calibrated P(fake), 'token_length' = token_count before truncation). Bins come from
-- the model version's own training baseline (baseline_bins), so versions without a loaded
-- baseline do not appear here (daily_drift still lists them, with NULL PSI). Like daily_drift,
-- only answers callers got: shadow rows are left out.
WITH live_values AS (
  SELECT model_version, DATE(ts) AS day, 'score' AS distribution, fake_probability AS value
  FROM ${predictions}
  WHERE NOT COALESCE(shadow, FALSE)
  UNION ALL
  SELECT model_version, DATE(ts) AS day, 'token_length' AS distribution,
    CAST(token_count AS FLOAT64) AS value
  FROM ${predictions}
  WHERE NOT COALESCE(shadow, FALSE)
),
live_totals AS (
  SELECT model_version, day, distribution, COUNT(*) AS n_live_total
  FROM live_values
  GROUP BY model_version, day, distribution
),
live_binned AS (
  SELECT v.model_version, v.day, b.distribution, b.bin_index, COUNT(*) AS n_live
  FROM live_values AS v
  JOIN `${dataset}.baseline_bins` AS b
    ON b.model_version = v.model_version
    AND b.distribution = v.distribution
    AND v.value >= b.bin_lower
    AND (v.value < b.bin_upper OR (b.upper_inclusive AND v.value = b.bin_upper))
  GROUP BY v.model_version, v.day, b.distribution, b.bin_index
)
SELECT
  t.model_version,
  t.day,
  b.distribution,
  b.bin_index,
  b.bin_lower,
  b.bin_upper,
  COALESCE(c.n_live, 0) AS n_live,
  COALESCE(c.n_live, 0) / t.n_live_total AS live_share,
  b.proportion AS baseline_share
FROM live_totals AS t
JOIN `${dataset}.baseline_bins` AS b
  ON b.model_version = t.model_version AND b.distribution = t.distribution
LEFT JOIN live_binned AS c
  ON c.model_version = t.model_version
  AND c.day = t.day
  AND c.distribution = b.distribution
  AND c.bin_index = b.bin_index
