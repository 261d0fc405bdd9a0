"""The SQL in sql/: rendered from its ${placeholders} and, for DuckDB, translated by sqlglot.

The files are BigQuery SQL with `${name}` placeholders, substituted here the way Terraform's
templatefile() does in the cloud: only `${...}` is special, so a JSONPath literal such as
'$.ts' stays as it is in both. Views take `${dataset}` and `${predictions}` (the rows a view reads:
the log table, or the prediction_log_rows view when the function logs to stdout; see
view_params), daily_drift also `${daily_histograms}`; queries/ take `${dataset}`,
`${predictions}`, `${start}` and `${end}`, and window_drift also `${daily_drift}`, the
daily_drift view run over the window's rows. logging/prediction_log_rows.sql takes `${dataset}`
and `${log_entries}` (the Cloud Logging sink's table); logging/inserted_rows.sql `${dataset}`.
"""

from __future__ import annotations

import re
from pathlib import Path

from prediction_log.schema import find_schema_file

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
DDL_DIR = SQL_DIR / "ddl"
VIEWS_DIR = SQL_DIR / "views"
QUERIES_DIR = SQL_DIR / "queries"
LOGGING_DIR = SQL_DIR / "logging"
LOG_ROWS_VIEW = "prediction_log_rows"
# Tables in creation order (views read all three).
TABLES = ("predictions", "baselines", "baseline_bins")
SCHEMA_FILES = {
    "predictions": find_schema_file(),
    "baselines": SQL_DIR / "baselines.schema.json",
    "baseline_bins": SQL_DIR / "baseline_bins.schema.json",
}


def view_names() -> list[str]:
    return sorted(p.stem for p in VIEWS_DIR.glob("*.sql"))


def view_params(dataset: str, rows: str = "predictions") -> dict[str, str]:
    """What a view's placeholders become (terraform/bigquery.tf's sql_vars say the same).
    `rows` names the relation in the dataset holding every log row: the table `predictions`, or
    the view prediction_log_rows when the function logs to stdout."""
    return _view_params(dataset, predictions=f"`{dataset}.{rows}`")


def _view_params(dataset: str, predictions: str) -> dict[str, str]:
    """`${daily_histograms}` is the daily_histograms view's query over the same rows, inlined
    into daily_drift so the bins are defined once and every view still reads tables only."""
    base = {"dataset": dataset, "predictions": predictions}
    return {**base, "daily_histograms": render(VIEWS_DIR / "daily_histograms.sql", **base)}


def render_view(name: str, dataset: str, rows: str = "predictions") -> str:
    return render(VIEWS_DIR / f"{name}.sql", **view_params(dataset, rows))


def render_log_rows(dataset: str, log_entries: str) -> str:
    """The prediction_log_rows view: the log table and the Logging sink's table `log_entries`
    (project.dataset.table) in the contract's shape, each row once."""
    return render(
        LOGGING_DIR / f"{LOG_ROWS_VIEW}.sql", dataset=dataset, log_entries=f"`{log_entries}`"
    )


def render_inserted_rows(dataset: str) -> str:
    """The prediction_log_rows view for PREDICTION_LOG=bq://: the log table, each row once."""
    return render(LOGGING_DIR / "inserted_rows.sql", dataset=dataset)


def render_window_drift(dataset: str, start: str, end: str, rows: str = "predictions") -> str:
    """The daily_drift steps over [start, end): one definition of PSI for both."""
    daily_drift = render(
        VIEWS_DIR / "daily_drift.sql", **_view_params(dataset, predictions="window_rows")
    )
    return render(
        QUERIES_DIR / "window_drift.sql",
        dataset=dataset,
        predictions=view_params(dataset, rows)["predictions"],
        start=start,
        end=end,
        daily_drift=daily_drift,
    )


PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def placeholders(text: str) -> set[str]:
    return set(PLACEHOLDER.findall(text))


def render(path: Path, **params: str) -> str:
    """Substitute placeholders; a missing one is an error, not an empty string."""
    text = path.read_text(encoding="utf-8")
    missing = placeholders(text) - set(params)
    if missing:
        raise KeyError(f"{path.name}: no value for {', '.join(sorted(missing))}")
    return PLACEHOLDER.sub(lambda m: params[m.group(1)], text)


def to_duckdb(bigquery_sql: str) -> str:
    import sqlglot  # only the DuckDB path needs it; BigQuery runs the files as they are

    statements = sqlglot.transpile(bigquery_sql, read="bigquery", write="duckdb")
    return ";\n".join(statements)
