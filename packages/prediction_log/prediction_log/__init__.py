"""The prediction log's code, shared by its writer and its reader by declared dependency.

The prediction function writes rows with `prediction_log.logger`; monitoring replays the dead
letter and creates the DuckDB table with the same `sinks`, `dead_letter` and `schema` modules, so
insert ids, table layout and spill files cannot drift apart. The row itself is defined by
sql/prediction_log.schema.json (read by `schema`), not by this code.

Modules (import them by name; nothing is imported here, so reading rows never starts the
logger's SIGTERM handler):
    schema       the schema file as columns; the DuckDB table derived from it
    sinks        where rows go: BigQuery, DuckDB or nowhere (PREDICTION_LOG)
    dead_letter  JSONL spill files in a folder or under gs://, read back by replay
    logger       the buffered background writer the function uses
"""
