"""The prediction-log schema (sql/prediction_log.schema.json) as the logger needs it.

The schema file is the single definition of a log row; this module only finds and reads it,
and derives the DuckDB table from it so the local log and BigQuery cannot drift apart.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SCHEMA_FILE_NAME = "prediction_log.schema.json"
SCHEMA_ENV = "PREDICTION_LOG_SCHEMA"

_DUCKDB_TYPES = {
    "STRING": "VARCHAR",
    "INT64": "BIGINT",
    "INTEGER": "BIGINT",
    "FLOAT64": "DOUBLE",
    "FLOAT": "DOUBLE",
    "BOOL": "BOOLEAN",
    "BOOLEAN": "BOOLEAN",
    # BigQuery TIMESTAMP is an absolute instant: TIMESTAMPTZ, read with TimeZone='UTC'.
    "TIMESTAMP": "TIMESTAMPTZ",
}

# The natural key of a row: BigQuery insert ids and DuckDB's primary key are built from it.
KEY_COLUMNS = ("request_id", "instance_index")


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    required: bool


def find_schema_file() -> Path:
    """Env PREDICTION_LOG_SCHEMA, else next to this module (the function zip puts it there),
    else the repository's sql/ (this package installed from packages/prediction_log/)."""
    candidates = []
    if os.environ.get(SCHEMA_ENV):
        candidates.append(Path(os.environ[SCHEMA_ENV]))
    here = Path(__file__).resolve().parent
    candidates += [
        here / SCHEMA_FILE_NAME,
        here.parents[2] / "sql" / SCHEMA_FILE_NAME,
    ]
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"{SCHEMA_FILE_NAME} not found (looked at {', '.join(map(str, candidates))})"
    )


def load_columns(path: Path | None = None) -> list[Column]:
    fields = json.loads((path or find_schema_file()).read_text(encoding="utf-8"))
    return [Column(f["name"], f["type"].upper(), f.get("mode") == "REQUIRED") for f in fields]


def duckdb_type(bigquery_type: str) -> str:
    return _DUCKDB_TYPES[bigquery_type]


def duckdb_create_table(table: str, columns: list[Column]) -> str:
    cols = [
        f'"{c.name}" {_DUCKDB_TYPES[c.type]}{" NOT NULL" if c.required else ""}' for c in columns
    ]
    names = {c.name for c in columns}
    if set(KEY_COLUMNS) <= names:
        cols.append("PRIMARY KEY (" + ", ".join(f'"{k}"' for k in KEY_COLUMNS) + ")")
    return f'CREATE TABLE IF NOT EXISTS "{table}" (\n  ' + ",\n  ".join(cols) + "\n)"


def row_id(row: dict[str, Any]) -> str:
    return f"{row['request_id']}-{row['instance_index']}"


def iso_utc(value: Any) -> Any:
    """datetime -> 'YYYY-MM-DDTHH:MM:SS.ffffffZ' (what BigQuery and DuckDB both parse)."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return value
