-- hourly_metrics: traffic, latency, scores and the out-of-domain share per model version and hour.
-- Latency percentiles are per request (latency_ms is the model time of the whole request and is
-- repeated on each of its instances), so only instance_index = 0 rows feed them. PERCENTILE_CONT
-- is exact on both BigQuery and DuckDB; APPROX_QUANTILES would give engine-specific answers.
-- SUM(IF(nullable = ..., 1, 0)) rather than COUNTIF(nullable = ...): on a group where the
-- condition is NULL for every row, BigQuery's COUNTIF gives 0 but DuckDB's COUNT_IF gives NULL.
-- n_requests counts HTTP calls (each has one instance_index = 0 row), not distinct request ids:
-- those come from callers, who may reuse one for many calls.
-- Only answers callers got: a shadow candidate's rows (shadow = TRUE, scored off the request path)
-- are in candidate_comparison instead, so they add no requests and no latency here.
WITH instances AS (
  SELECT
    model_version,
    TIMESTAMP_TRUNC(ts, HOUR) AS hour,
    instance_index,
    label,
    fake_probability,
    token_count,
    truncated,
    latency_ms,
    cold_start,
    in_domain
  FROM ${predictions}
  WHERE NOT COALESCE(shadow, FALSE)
),
request_latency AS (
  SELECT DISTINCT
    model_version,
    hour,
    PERCENTILE_CONT(latency_ms, 0.5) OVER (PARTITION BY model_version, hour) AS latency_p50_ms,
    PERCENTILE_CONT(latency_ms, 0.95) OVER (PARTITION BY model_version, hour) AS latency_p95_ms,
    PERCENTILE_CONT(latency_ms, 0.99) OVER (PARTITION BY model_version, hour) AS latency_p99_ms
  FROM instances
  WHERE instance_index = 0
),
hourly AS (
  SELECT
    model_version,
    hour,
    COUNT(*) AS n_predictions,
    COUNTIF(instance_index = 0) AS n_requests,
    COUNTIF(cold_start AND instance_index = 0) AS n_cold_starts,
    AVG(IF(label = 'fake', 1.0, 0.0)) AS fake_rate,
    AVG(fake_probability) AS mean_fake_probability,
    AVG(IF(truncated, 1.0, 0.0)) AS truncation_rate,
    AVG(token_count) AS mean_token_count,
    COUNTIF(in_domain IS NOT NULL) AS n_ood_scored,
    SUM(IF(in_domain = FALSE, 1, 0)) AS n_out_of_domain,
    SAFE_DIVIDE(SUM(IF(in_domain = FALSE, 1, 0)), COUNTIF(in_domain IS NOT NULL)) AS ood_share
  FROM instances
  GROUP BY model_version, hour
)
SELECT
  h.model_version,
  h.hour,
  h.n_predictions,
  h.n_requests,
  h.n_cold_starts,
  h.fake_rate,
  h.mean_fake_probability,
  h.truncation_rate,
  h.mean_token_count,
  h.n_ood_scored,
  h.n_out_of_domain,
  h.ood_share,
  l.latency_p50_ms,
  l.latency_p95_ms,
  l.latency_p99_ms
FROM hourly AS h
LEFT JOIN request_latency AS l
  ON l.model_version = h.model_version AND l.hour = h.hour
