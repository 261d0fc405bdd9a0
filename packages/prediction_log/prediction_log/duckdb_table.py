"""The DuckDB log table: created from the contract, and brought up to date when an older release
made it, so a local log file from before keeps opening and keeps its rows.

Two kinds of change happen to an existing table. A new nullable column is added in place
(ALTER TABLE ADD COLUMN). A new key cannot be: DuckDB cannot drop or replace a primary key, and
the old key (request_id, instance_index) would keep silently ignoring rows of callers that reuse
a request id. Such a table is rebuilt in one transaction, its rows copied over, each old row
keyed by its old insert id (request_id-instance_index), which is also the key its copies in old
dead-letter files get, so replaying them later adds nothing twice.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from prediction_log.schema import KEY_COLUMNS, Column, duckdb_create_table, duckdb_type


def connect_waiting(path: Path, lock_wait_s: float) -> Any:
    """A connection to the DuckDB file at `path`, in UTC (BigQuery's TIMESTAMP semantics). One
    process at a time may hold a DuckDB file for writing, so another's lock is waited out for up
    to `lock_wait_s` (backing off from 50 ms to 1 s) before its IOException is raised."""
    import duckdb

    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + lock_wait_s
    delay = 0.05
    while True:
        try:
            con = duckdb.connect(str(path))
            con.execute("SET TimeZone = 'UTC'")
            return con
        except duckdb.IOException:
            if time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


_LEGACY_ROW_ID = "request_id || '-' || CAST(instance_index AS VARCHAR)"


def _literal(name: str) -> str:
    # Table names are the project's own; quoting is for form. (No bound parameter: binding makes
    # DuckDB import pandas, seconds on a cold process.)
    return "'" + name.replace("'", "''") + "'"


def _existing_columns(con: Any, table: str) -> list[str]:
    rows = con.execute(
        "SELECT column_name FROM duckdb_columns() "
        f"WHERE table_name = {_literal(table)} AND schema_name = current_schema() "
        "ORDER BY column_index"
    ).fetchall()
    return [r[0] for r in rows]


def _primary_key(con: Any, table: str) -> tuple[str, ...]:
    rows = con.execute(
        "SELECT constraint_column_names FROM duckdb_constraints() "
        f"WHERE table_name = {_literal(table)} AND schema_name = current_schema() "
        "AND constraint_type = 'PRIMARY KEY'"
    ).fetchall()
    return tuple(rows[0][0]) if rows else ()


def ensure_table(con: Any, table: str, columns: list[Column]) -> str:
    """Create `table` or migrate it to `columns`; returns what was done: "created",
    "added <columns>", "rebuilt" or "" (already current)."""
    existing = _existing_columns(con, table)
    if not existing:
        con.execute(duckdb_create_table(table, columns))
        return "created"
    names = [c.name for c in columns]
    wanted_key = KEY_COLUMNS if set(KEY_COLUMNS) <= set(names) else ()
    if _primary_key(con, table) != wanted_key:
        _rebuild(con, table, columns, existing)
        return "rebuilt"
    missing = [c for c in columns if c.name not in existing]
    for column in missing:
        # Contract columns added after a table was made are nullable (BigQuery's rule too).
        con.execute(f'ALTER TABLE "{table}" ADD COLUMN "{column.name}" {duckdb_type(column.type)}')
    return ("added " + ", ".join(c.name for c in missing)) if missing else ""


def _rebuild(con: Any, table: str, columns: list[Column], existing: list[str]) -> None:
    staging = f"{table}__migrating"
    select = []
    for column in columns:
        if column.name in existing:
            value = f'"{column.name}"'
            if column.name == "row_id":
                value = f'COALESCE("row_id", {_LEGACY_ROW_ID})'
        elif column.name == "row_id":
            value = _LEGACY_ROW_ID
        else:
            value = "NULL"
        select.append(f'{value} AS "{column.name}"')
    names = ", ".join(f'"{c.name}"' for c in columns)
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(f'DROP TABLE IF EXISTS "{staging}"')
        con.execute(duckdb_create_table(staging, columns))
        con.execute(
            f'INSERT OR IGNORE INTO "{staging}" ({names}) SELECT {", ".join(select)} FROM "{table}"'
        )
        con.execute(f'DROP TABLE "{table}"')
        con.execute(f'ALTER TABLE "{staging}" RENAME TO "{table}"')
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
