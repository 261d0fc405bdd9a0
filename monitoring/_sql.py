"""The SQL in sql/: rendered from its ${placeholders} and, for DuckDB, translated by sqlglot.

The files are BigQuery SQL with `${dataset}` (and, for queries/, `${start}` / `${end}`) as the
only placeholders: string.Template here, Terraform's templatefile() in the cloud, same syntax.
"""

from __future__ import annotations

import string
from pathlib import Path

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
DDL_DIR = SQL_DIR / "ddl"
VIEWS_DIR = SQL_DIR / "views"
QUERIES_DIR = SQL_DIR / "queries"
# Tables in creation order (views read all three).
TABLES = ("predictions", "baselines", "baseline_bins")
SCHEMA_FILES = {
    "predictions": SQL_DIR / "prediction_log.schema.json",
    "baselines": SQL_DIR / "baselines.schema.json",
    "baseline_bins": SQL_DIR / "baseline_bins.schema.json",
}


def view_names() -> list[str]:
    return sorted(p.stem for p in VIEWS_DIR.glob("*.sql"))


def render(path: Path, **params: str) -> str:
    """Substitute placeholders; a missing one is an error, not an empty string."""
    return string.Template(path.read_text(encoding="utf-8")).substitute(params)


def to_duckdb(bigquery_sql: str) -> str:
    import sqlglot  # only the DuckDB path needs it; BigQuery runs the files as they are

    statements = sqlglot.transpile(bigquery_sql, read="bigquery", write="duckdb")
    return ";\n".join(statements)
