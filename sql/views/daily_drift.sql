-- daily_drift: the drift signal per model version and day, against that version's training
-- baseline: population stability index (PSI) of the score and of the token length, truncation
-- rate, fake rate and out-of-domain share next to their baseline values.
-- PSI = sum over bins of (live - base) * ln(live / base), with both shares floored at 1e-4 so an
-- empty bin adds a large but finite term. Rule of thumb: < 0.1 stable, 0.1-0.2 moderate, > 0.2
-- shifted (monitor's default threshold).
-- This file is the one definition of these steps and daily_histograms the one definition of the
-- bins (the daily_histograms placeholder is that view's query over the same rows): the rows they read (the
-- predictions placeholder) are the whole log for the view, one time window's rows for
-- sql/queries/window_drift.sql.
-- Only answers callers got (shadow rows are left out), so the monitor's verdict is about what
-- was served; a shadow candidate's scores are compared in candidate_comparison.
WITH live AS (
  SELECT model_version, DATE(ts) AS day, fake_probability, token_count, truncated, label, in_domain
  FROM ${predictions}
  WHERE NOT COALESCE(shadow, FALSE)
),
live_totals AS (
  SELECT
    model_version,
    day,
    COUNT(*) AS n_predictions,
    AVG(IF(label = 'fake', 1.0, 0.0)) AS fake_rate,
    AVG(IF(truncated, 1.0, 0.0)) AS truncation_rate,
    AVG(token_count) AS mean_token_count,
    SAFE_DIVIDE(SUM(IF(in_domain = FALSE, 1, 0)), COUNTIF(in_domain IS NOT NULL)) AS ood_share
  FROM live
  GROUP BY model_version, day
),
psi_terms AS (
  -- The binning is daily_histograms' own (inlined, so this view still reads tables only).
  SELECT
    model_version,
    day,
    distribution,
    GREATEST(live_share, 0.0001) AS live_share,
    GREATEST(baseline_share, 0.0001) AS baseline_share
  FROM (
${daily_histograms}
  ) AS histograms
),
psi AS (
  SELECT
    model_version,
    day,
    SUM(IF(distribution = 'score', (live_share - baseline_share) * LN(live_share / baseline_share), NULL)) AS score_psi,
    SUM(IF(distribution = 'token_length', (live_share - baseline_share) * LN(live_share / baseline_share), NULL)) AS token_length_psi
  FROM psi_terms
  GROUP BY model_version, day
)
SELECT
  t.model_version,
  t.day,
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
  ON p.model_version = t.model_version AND p.day = t.day
LEFT JOIN `${dataset}.baselines` AS base
  ON base.model_version = t.model_version
