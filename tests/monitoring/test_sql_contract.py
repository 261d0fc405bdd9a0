"""sql/ stays one definition: the DDL matches the schema files, every file uses only the
documented placeholders (Terraform templatefile and string.Template both read them), and no
construct known to translate wrongly to DuckDB creeps in."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import sqlglot
from sqlglot import exp

from monitoring import _sql

BQ_TYPES = {"STRING": "TEXT", "INT64": "BIGINT", "FLOAT64": "DOUBLE", "BOOL": "BOOLEAN"}
ALL_SQL = sorted(_sql.SQL_DIR.rglob("*.sql"))


@pytest.mark.parametrize("table", _sql.TABLES)
def test_ddl_columns_match_schema_file(table: str) -> None:
    ddl = _sql.render(_sql.DDL_DIR / f"{table}.sql", dataset="p.d")
    create = sqlglot.parse_one(ddl, read="bigquery")
    columns = [
        (
            c.name,
            c.args["kind"].sql("bigquery"),
            any(isinstance(k.kind, exp.NotNullColumnConstraint) for k in c.constraints),
        )
        for c in create.find_all(exp.ColumnDef)
    ]
    schema = json.loads(_sql.SCHEMA_FILES[table].read_text())
    expected = [(f["name"], f["type"], f["mode"] == "REQUIRED") for f in schema]
    assert columns == expected


def test_predictions_table_is_partitioned_by_day_and_clustered_by_version() -> None:
    ddl = _sql.render(_sql.DDL_DIR / "predictions.sql", dataset="p.d")
    create = sqlglot.parse_one(ddl, read="bigquery")
    partition = create.find(exp.PartitionedByProperty)
    cluster = create.find(exp.ClusterProperty)
    assert partition is not None and partition.this.sql("bigquery") == "DATE(ts)"
    assert cluster is not None and [e.sql() for e in cluster.expressions] == ["model_version"]


@pytest.mark.parametrize("path", ALL_SQL, ids=lambda p: str(p.relative_to(_sql.SQL_DIR)))
def test_placeholders_are_the_documented_ones(path: Path) -> None:
    text = path.read_text()
    allowed = {
        _sql.QUERIES_DIR: {"dataset", "predictions", "start", "end", "daily_drift"},
        _sql.LOGGING_DIR: {"dataset", "log_entries"},
    }.get(path.parent, set(_sql.view_params("d")))
    assert _sql.placeholders(text) <= allowed
    # Terraform templatefile() would also interpret these; keep them out.
    assert "%{" not in text and "$${" not in text
    # Any other $ only opens a JSONPath in a string literal ('$.field').
    assert re.findall(r"(?<!')\$(?![{.])", text) == []


@pytest.mark.parametrize("path", ALL_SQL, ids=lambda p: str(p.relative_to(_sql.SQL_DIR)))
def test_no_construct_known_to_break_in_translation(path: Path) -> None:
    code = "\n".join(line.split("--")[0] for line in path.read_text().upper().splitlines())
    for pattern in (
        r"DAYOFWEEK",
        r"\bFORMAT\s*\(",
        r"ARRAY_AGG\s*\([^)]*LIMIT",
        r"APPROX_QUANTILES",  # engine-specific approximations: results would differ
        r"WITH\s+OFFSET",  # 0-based on BigQuery, WITH ORDINALITY (1-based) on DuckDB
    ):
        assert not re.search(pattern, code), f"{path.name} uses {pattern}"


@pytest.mark.parametrize("path", ALL_SQL, ids=lambda p: str(p.relative_to(_sql.SQL_DIR)))
def test_countif_never_sees_a_nullable_condition(path: Path) -> None:
    # COUNTIF over all-NULL conditions: 0 on BigQuery, NULL on DuckDB (COUNT_IF).
    nullable = [
        f["name"]
        for f in json.loads(_sql.SCHEMA_FILES["predictions"].read_text())
        if f["mode"] == "NULLABLE"
    ]
    code = path.read_text()
    for column in nullable:
        assert not re.search(rf"COUNTIF\(\s*{column}\b(?!\s+IS\s+(NOT\s+)?NULL)", code), column


@pytest.mark.parametrize("name", _sql.view_names())
def test_views_translate_to_duckdb(name: str) -> None:
    bq = _sql.render_view(name, "main")
    duck = _sql.to_duckdb(bq)
    assert sqlglot.parse_one(duck, read="duckdb").find(exp.Select) is not None
    assert "`" not in duck


def test_expected_views_exist() -> None:
    assert set(_sql.view_names()) == {
        "hourly_metrics",
        "daily_drift",
        "daily_histograms",
        "model_comparison",
        "candidate_comparison",
    }


def test_log_rows_view_gives_the_contract_columns_from_both_sources() -> None:
    """Both branches of the union list the schema's columns in its order (a UNION matches
    columns by position), so the view's rows have the contract's shape."""
    sql = _sql.render_log_rows("p.d", "p.sink.run_googleapis_com_stdout")
    tree = sqlglot.parse_one(sql, read="bigquery")
    schema = [f["name"] for f in json.loads(_sql.SCHEMA_FILES["predictions"].read_text())]
    ctes = {cte.alias: cte.this for cte in tree.find_all(exp.CTE)}
    for name in ("logged", "inserted"):
        assert ctes[name].named_selects == schema, name
    assert "`p.sink.run_googleapis_com_stdout`" in sql
