-- candidate_comparison: a canary or shadow trial, per day, model version and kind of row
-- (shadow = FALSE: answers callers got; TRUE: a shadow candidate's answers, logged only).
-- traffic_share: the version's requests over the day's live requests (a canary's share of the
-- traffic; for shadow rows the share of live requests the shadow scored, below 1 when an
-- instance dropped shadow work to keep live answers on time).
-- n_paired, label_agreement, mean_abs_score_diff: shadow rows against the answer the caller got
-- for the same text of the same request (request_id, instance_index and text_sha256), so they
-- compare the two versions on exactly the same texts. A canary answers other requests than
-- production, so its rows have no pair here; model_comparison compares it on texts both saw.
-- Score distribution: label shares (fake_rate), mean and deciles of P(fake); latency is per
-- request (instance_index = 0 rows), a shadow's measured off the request path.
WITH logged AS (
  SELECT
    DATE(ts) AS day,
    model_version,
    COALESCE(shadow, FALSE) AS shadow,
    request_id,
    instance_index,
    text_sha256,
    label,
    fake_probability,
    latency_ms,
    in_domain
  FROM ${predictions}
),
live_answers AS (
  -- Each text of a request once: callers may send one request id more than once.
  SELECT
    request_id,
    instance_index,
    text_sha256,
    MIN(label) AS label,
    AVG(fake_probability) AS fake_probability
  FROM logged
  WHERE NOT shadow
  GROUP BY request_id, instance_index, text_sha256
),
paired AS (
  SELECT
    s.day,
    s.model_version,
    COUNT(*) AS n_paired,
    AVG(IF(s.label = l.label, 1.0, 0.0)) AS label_agreement,
    AVG(ABS(s.fake_probability - l.fake_probability)) AS mean_abs_score_diff
  FROM logged AS s
  JOIN live_answers AS l
    ON l.request_id = s.request_id
    AND l.instance_index = s.instance_index
    AND l.text_sha256 = s.text_sha256
  WHERE s.shadow
  GROUP BY s.day, s.model_version
),
live_requests AS (
  SELECT day, COUNTIF(instance_index = 0) AS n_live_requests
  FROM logged
  WHERE NOT shadow
  GROUP BY day
),
per_version AS (
  SELECT
    day,
    model_version,
    shadow,
    COUNT(*) AS n_predictions,
    COUNTIF(instance_index = 0) AS n_requests,
    AVG(IF(label = 'fake', 1.0, 0.0)) AS fake_rate,
    AVG(fake_probability) AS mean_fake_probability,
    COUNTIF(in_domain IS NOT NULL) AS n_ood_scored,
    SAFE_DIVIDE(SUM(IF(in_domain = FALSE, 1, 0)), COUNTIF(in_domain IS NOT NULL)) AS ood_share
  FROM logged
  GROUP BY day, model_version, shadow
),
score_deciles AS (
  SELECT DISTINCT
    day,
    model_version,
    shadow,
    PERCENTILE_CONT(fake_probability, 0.1) OVER (PARTITION BY day, model_version, shadow) AS score_p10,
    PERCENTILE_CONT(fake_probability, 0.5) OVER (PARTITION BY day, model_version, shadow) AS score_p50,
    PERCENTILE_CONT(fake_probability, 0.9) OVER (PARTITION BY day, model_version, shadow) AS score_p90
  FROM logged
),
request_latency AS (
  SELECT DISTINCT
    day,
    model_version,
    shadow,
    PERCENTILE_CONT(latency_ms, 0.5) OVER (PARTITION BY day, model_version, shadow) AS latency_p50_ms,
    PERCENTILE_CONT(latency_ms, 0.95) OVER (PARTITION BY day, model_version, shadow) AS latency_p95_ms,
    PERCENTILE_CONT(latency_ms, 0.99) OVER (PARTITION BY day, model_version, shadow) AS latency_p99_ms
  FROM logged
  WHERE instance_index = 0
)
SELECT
  v.day,
  v.model_version,
  v.shadow,
  v.n_predictions,
  v.n_requests,
  SAFE_DIVIDE(v.n_requests, t.n_live_requests) AS traffic_share,
  COALESCE(p.n_paired, 0) AS n_paired,
  p.label_agreement,
  p.mean_abs_score_diff,
  v.fake_rate,
  v.mean_fake_probability,
  q.score_p10,
  q.score_p50,
  q.score_p90,
  v.n_ood_scored,
  v.ood_share,
  l.latency_p50_ms,
  l.latency_p95_ms,
  l.latency_p99_ms
FROM per_version AS v
LEFT JOIN live_requests AS t
  ON t.day = v.day
LEFT JOIN paired AS p
  ON v.shadow AND p.day = v.day AND p.model_version = v.model_version
LEFT JOIN score_deciles AS q
  ON q.day = v.day AND q.model_version = v.model_version AND q.shadow = v.shadow
LEFT JOIN request_latency AS l
  ON l.day = v.day AND l.model_version = v.model_version AND l.shadow = v.shadow
