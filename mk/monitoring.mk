# Prediction log and monitoring (sql/, monitoring/, functions/predict/prediction_log.py).
# Settings (make VAR=value or environment): PREDICTION_LOG (duckdb://... or bq://project.dataset.table),
# STORE (artifact store with the production baseline), DEAD_LETTER_URI, WINDOW, PSI_THRESHOLD.

PREDICTION_LOG ?= duckdb://local/predictions.duckdb
STORE ?= local/store
DEAD_LETTER_URI ?= local/dead_letter
WINDOW ?= 24h
DASHBOARD_WINDOW ?= 7d
PSI_THRESHOLD ?= 0.2
DASHBOARD ?= local/dashboard.html

dashboard: $(STAMP) ## render local/dashboard.html from the prediction log (PREDICTION_LOG, DASHBOARD_WINDOW)
	$(PY) -m monitoring dashboard --log $(PREDICTION_LOG) --store $(STORE) --window $(DASHBOARD_WINDOW) --out $(DASHBOARD)

monitor: $(STAMP) ## drift report over WINDOW; exits 3 when PSI > PSI_THRESHOLD (RETRAIN=1 starts a retrain)
	$(PY) -m monitoring monitor --log $(PREDICTION_LOG) --store $(STORE) --window $(WINDOW) \
	  --psi-threshold $(PSI_THRESHOLD) $(if $(RETRAIN),--retrain)

replay: $(STAMP) ## load dead-letter rows (DEAD_LETTER_URI) into PREDICTION_LOG, each exactly once
	$(PY) -m monitoring replay --log $(PREDICTION_LOG) --dead-letter $(DEAD_LETTER_URI)

monitoring-tables: $(STAMP) ## create the log tables and views from sql/ in PREDICTION_LOG (DuckDB or BigQuery)
	$(PY) -m monitoring create-tables --log $(PREDICTION_LOG)

bench-logging: $(STAMP) ## p50 latency log() adds per request -> reports/bench_logging.{json,md}
	$(PY) -m benchmarks.bench_logging

test-monitoring: $(STAMP) ## the monitoring tests (bqemulator on 127.0.0.1; about a minute)
	$(PY) -m pytest -q tests/monitoring

.PHONY: dashboard monitor replay monitoring-tables bench-logging test-monitoring
