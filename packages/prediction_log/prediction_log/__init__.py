"""The prediction log's code, shared by its writer and its reader by declared dependency.

The prediction function writes rows with `prediction_log.logger`; monitoring replays the dead
letter and creates the DuckDB table with the same `sinks`, `dead_letter` and `schema` modules, so
insert ids, table layout and spill files cannot drift apart. The row itself is defined by
prediction_log.schema.json beside these modules (read by `schema`), not by this code.

Modules (import them by name; nothing is imported here, and importing them sets no signal
handler: the function installs the logger's SIGTERM flush itself, from main.py):
    schema        the schema file as columns; row keys (row_id, made by the server)
    rows          a row as every sink stores it: contract columns, no NaN or infinity
    duckdb_table  the DuckDB table derived from the schema, and its migration
    sink_api      what a sink is: write, write_missing, WriteResult, outcome_unknown
    sinks         where rows go: stdout, BigQuery, DuckDB or nowhere (PREDICTION_LOG)
    bigquery_sink the bq:// sink and the project's BigQuery client
    line_spool    the function's local writer: lines beside the DuckDB file, loaded by readers
    dead_letter   JSONL spill files in a folder or under gs://, and dead-row lines, for replay
    settings      the logger's settings, from the environment in one documented order
    logger        the writer the function uses: synchronous for stdout and duckdb://, a
                  bounded buffer and a background thread for bq://
"""
