"""Monitoring for the prediction log: SQL views on BigQuery or DuckDB, drift checks, dashboard,
dead-letter replay. Run `python -m monitoring --help`."""
