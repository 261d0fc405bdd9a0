-- model_comparison: two model versions side by side, one row per pair (version_a older than
-- version_b: versions sort by time). In Looker Studio filter version_a / version_b to the two
-- bundles to compare (e.g. production and the candidate of a canary or shadow run).
-- shared_texts / label_agreement / mean_abs_score_diff compare the two versions on the same
-- texts (joined on text_sha256), so they are meaningful even when their traffic differed.
-- Shadow rows count: they are a model's scores of real texts, the best data for this comparison
-- (candidate_comparison splits live and shadow traffic and their latency).
WITH per_version AS (
  SELECT
    model_version,
    COUNT(*) AS n_predictions,
    MIN(ts) AS first_seen,
    MAX(ts) AS last_seen,
    AVG(IF(label = 'fake', 1.0, 0.0)) AS fake_rate,
    AVG(fake_probability) AS mean_fake_probability,
    AVG(IF(truncated, 1.0, 0.0)) AS truncation_rate,
    SAFE_DIVIDE(SUM(IF(in_domain = FALSE, 1, 0)), COUNTIF(in_domain IS NOT NULL)) AS ood_share
  FROM ${predictions}
  GROUP BY model_version
),
request_latency AS (
  SELECT DISTINCT
    model_version,
    PERCENTILE_CONT(latency_ms, 0.5) OVER (PARTITION BY model_version) AS latency_p50_ms,
    PERCENTILE_CONT(latency_ms, 0.95) OVER (PARTITION BY model_version) AS latency_p95_ms
  FROM ${predictions}
  WHERE instance_index = 0
),
per_text AS (
  -- A version scores a given text deterministically; MAX just picks that one value.
  SELECT
    model_version,
    text_sha256,
    MAX(fake_probability) AS fake_probability,
    MAX(IF(label = 'fake', 1, 0)) AS is_fake
  FROM ${predictions}
  GROUP BY model_version, text_sha256
),
shared AS (
  SELECT
    a.model_version AS version_a,
    b.model_version AS version_b,
    COUNT(*) AS shared_texts,
    AVG(IF(a.is_fake = b.is_fake, 1.0, 0.0)) AS label_agreement,
    AVG(ABS(a.fake_probability - b.fake_probability)) AS mean_abs_score_diff
  FROM per_text AS a
  JOIN per_text AS b
    ON a.text_sha256 = b.text_sha256
  WHERE a.model_version < b.model_version
  GROUP BY a.model_version, b.model_version
)
SELECT
  a.model_version AS version_a,
  b.model_version AS version_b,
  a.n_predictions AS n_predictions_a,
  b.n_predictions AS n_predictions_b,
  a.first_seen AS first_seen_a,
  b.first_seen AS first_seen_b,
  a.last_seen AS last_seen_a,
  b.last_seen AS last_seen_b,
  a.fake_rate AS fake_rate_a,
  b.fake_rate AS fake_rate_b,
  a.mean_fake_probability AS mean_fake_probability_a,
  b.mean_fake_probability AS mean_fake_probability_b,
  a.truncation_rate AS truncation_rate_a,
  b.truncation_rate AS truncation_rate_b,
  a.ood_share AS ood_share_a,
  b.ood_share AS ood_share_b,
  la.latency_p50_ms AS latency_p50_ms_a,
  lb.latency_p50_ms AS latency_p50_ms_b,
  la.latency_p95_ms AS latency_p95_ms_a,
  lb.latency_p95_ms AS latency_p95_ms_b,
  COALESCE(s.shared_texts, 0) AS shared_texts,
  s.label_agreement,
  s.mean_abs_score_diff
FROM per_version AS a
CROSS JOIN per_version AS b
LEFT JOIN request_latency AS la
  ON la.model_version = a.model_version
LEFT JOIN request_latency AS lb
  ON lb.model_version = b.model_version
LEFT JOIN shared AS s
  ON s.version_a = a.model_version AND s.version_b = b.model_version
WHERE a.model_version < b.model_version
