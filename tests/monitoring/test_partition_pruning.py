"""A window of ts reads only that window's day partitions, on both tables the log rows come from:
the view prediction_log_rows gives ts straight from each table's partition column (the Logging
sink's entry timestamp, the predictions table's ts), keeps ts in its dedupe's PARTITION BY so a
filter on ts is pushed below it, and the monitor's window query filters ts on both sides. The
partition columns are read from the Terraform tables, so a change on either side breaks this."""

from __future__ import annotations

import re
from pathlib import Path

import sqlglot
from sqlglot import exp

from monitoring import _sql
from prediction_log.sinks import StdoutSink

ROOT = Path(__file__).resolve().parents[2]
TERRAFORM = ROOT / "terraform"


def _partition_field(tf_file: str, resource: str) -> str:
    text = (TERRAFORM / tf_file).read_text()
    start = text.index(f'resource "google_bigquery_table" "{resource}"')
    block = text[start : text.index("\nresource ", start + 1)]
    found = re.search(r'time_partitioning \{[^}]*field\s*=\s*"(\w+)"', block)
    assert found, f"{resource} has no time_partitioning field"
    return found.group(1)


def _log_rows_tree() -> exp.Expression:
    sql = _sql.render_log_rows("p.d", "p.sink.run_googleapis_com_stdout")
    return sqlglot.parse_one(sql, read="bigquery")


def _inserted_rows_tree() -> exp.Expression:
    return sqlglot.parse_one(_sql.render_inserted_rows("p.d"), read="bigquery")


def _ts_source(cte: exp.Expression) -> exp.Expression:
    select = cte.find(exp.Select)
    assert select is not None
    (ts,) = [e for e in select.expressions if e.alias_or_name == "ts"]
    return ts.this if isinstance(ts, exp.Alias) else ts


def test_the_views_ts_is_each_tables_partition_column() -> None:
    ctes = {cte.alias: cte.this for cte in _log_rows_tree().find_all(exp.CTE)}
    logged = _ts_source(ctes["logged"])
    inserted = _ts_source(ctes["inserted"])
    # A bare column, not an expression of one: only then does a filter on ts prune partitions.
    assert isinstance(logged, exp.Column), logged.sql("bigquery")
    assert logged.name == _partition_field("prediction_log_sink.tf", "stdout_entries")
    assert isinstance(inserted, exp.Column), inserted.sql("bigquery")
    assert inserted.name == _partition_field("bigquery.tf", "predictions")
    # The same view when the function inserts into BigQuery itself (bq://).
    only = {cte.alias: cte.this for cte in _inserted_rows_tree().find_all(exp.CTE)}
    source = _ts_source(only["inserted"])
    assert isinstance(source, exp.Column) and source.name == inserted.name


def test_a_filter_on_ts_is_pushed_below_the_dedupe() -> None:
    windows = [*_log_rows_tree().find_all(exp.Window), *_inserted_rows_tree().find_all(exp.Window)]
    assert len(windows) >= 2, "a view no longer dedupes"
    for window in windows:
        keys = {c.name for c in window.args.get("partition_by") or [] if isinstance(c, exp.Column)}
        assert "ts" in keys, window.sql("bigquery")


def test_the_entry_timestamp_is_the_rows_ts() -> None:
    """Logging sets an entry's timestamp from the line's `time`, so the partition holding the
    entry is the row's own day, and the view's ts is the row's ts."""
    row = {"ts": "2024-03-01T23:59:59.999999Z", "row_id": "r1"}
    line = StdoutSink.line(row)
    assert f'"{StdoutSink.TIME_FIELD}":"{row["ts"]}"' in line


def test_the_monitors_window_query_bounds_ts_on_both_sides() -> None:
    sql = _sql.render_window_drift("p.d", "2024-03-01 00:00:00+00:00", "2024-03-01 01:00:00+00:00")
    tree = sqlglot.parse_one(sql, read="bigquery")
    ctes = {cte.alias: cte.this for cte in tree.find_all(exp.CTE)}
    where = ctes["window_rows"].find(exp.Where)
    assert where is not None
    bounds = [
        cmp
        for cmp in where.find_all(exp.GTE, exp.GT, exp.LT, exp.LTE)
        if isinstance(cmp.this, exp.Column) and cmp.this.name == "ts"
    ]
    kinds = {type(b) for b in bounds}
    assert kinds & {exp.GTE, exp.GT} and kinds & {exp.LT, exp.LTE}, where.sql("bigquery")
