"""The function's log modules (functions/predict/_log_*.py, _dead_letter.py), imported by name.

The function folder is deployed on its own, so its modules import each other as top-level
names; monitoring puts that folder on sys.path once here, so replay writes rows with exactly the
code (sinks, insert ids, DuckDB table) that the function uses.
"""

from __future__ import annotations

import sys
from pathlib import Path

FUNCTION_DIR = Path(__file__).resolve().parent.parent / "functions" / "predict"
if str(FUNCTION_DIR) not in sys.path:
    sys.path.append(str(FUNCTION_DIR))

import _dead_letter  # noqa: E402
import _log_schema  # noqa: E402
import _log_sinks  # noqa: E402

DeadLetter = _dead_letter.DeadLetter
make_sink = _log_sinks.make_sink
bigquery_client = _log_sinks.bigquery_client
load_columns = _log_schema.load_columns
duckdb_create_table = _log_schema.duckdb_create_table
Column = _log_schema.Column

__all__ = [
    "Column",
    "DeadLetter",
    "bigquery_client",
    "duckdb_create_table",
    "load_columns",
    "make_sink",
]
