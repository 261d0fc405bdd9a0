"""The SQL in sql/: rendered from its ${placeholders} and, for DuckDB, translated by sqlglot.

The files are BigQuery SQL with placeholders: string.Template here, Terraform's templatefile() in
the cloud, same syntax. Views take `${dataset}` and `${predictions}` (the rows a view reads:
the log table, see view_params); queries/ take `${dataset}`, `${start}` and `${end}`, and
window_drift also `${daily_drift}`, the daily_drift view run over the window's rows.
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


def view_params(dataset: str) -> dict[str, str]:
    """What a view's placeholders become (terraform/bigquery.tf's sql_vars say the same)."""
    return {"dataset": dataset, "predictions": f"`{dataset}.predictions`"}


def render_view(name: str, dataset: str) -> str:
    return render(VIEWS_DIR / f"{name}.sql", **view_params(dataset))


def render_window_drift(dataset: str, start: str, end: str) -> str:
    """The daily_drift steps over [start, end): one definition of PSI for both."""
    daily_drift = render(VIEWS_DIR / "daily_drift.sql", dataset=dataset, predictions="window_rows")
    return render(
        QUERIES_DIR / "window_drift.sql",
        dataset=dataset,
        start=start,
        end=end,
        daily_drift=daily_drift,
    )


def render(path: Path, **params: str) -> str:
    """Substitute placeholders; a missing one is an error, not an empty string."""
    return string.Template(path.read_text(encoding="utf-8")).substitute(params)


def to_duckdb(bigquery_sql: str) -> str:
    import sqlglot  # only the DuckDB path needs it; BigQuery runs the files as they are

    statements = sqlglot.transpile(bigquery_sql, read="bigquery", write="duckdb")
    return ";\n".join(statements)
