-- window_drift: daily_drift's numbers over an arbitrary time window [${start}, ${end}) instead of
-- a calendar day; `python -m monitoring monitor` runs it. ${start} and ${end} are UTC timestamps
-- written as 'YYYY-MM-DD HH:MM:SS+00:00' (whole seconds) by monitoring, never user text.
-- The steps are daily_drift's own: the daily_drift placeholder is sql/views/daily_drift.sql
-- reading window_rows, where every row carries the window's start as its time, so the view's
-- one "day" is the whole window.
WITH window_rows AS (
  SELECT * REPLACE (TIMESTAMP '${start}' AS ts)
  FROM ${predictions}
  WHERE ts >= TIMESTAMP '${start}' AND ts < TIMESTAMP '${end}'
)
SELECT * EXCEPT (day)
FROM (
${daily_drift}
) AS drift
