"""Run the sql/ files on BigQuery (bq://project.dataset[.table]) or on the embedded DuckDB log
(duckdb://path) with one interface, so every command and test works on both."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from datetime import date, datetime
from pathlib import Path
from typing import Any

from monitoring import _sql
from prediction_log.bigquery_sink import bigquery_client
from prediction_log.duckdb_table import ensure_table
from prediction_log.line_spool import connect_and_load
from prediction_log.schema import load_columns

Row = dict[str, Any]


class Engine(ABC):
    dataset: str  # what ${dataset} becomes
    # The relation in the dataset holding every log row: the table, or the prediction_log_rows
    # view when the function logs to stdout (what ${predictions} becomes).
    rows: str = "predictions"

    @abstractmethod
    def query(self, bigquery_sql: str) -> list[Row]:
        """Run BigQuery SQL (translated first where needed); rows as dicts."""

    @abstractmethod
    def create_tables(self) -> None: ...

    @abstractmethod
    def create_views(self) -> None: ...

    @abstractmethod
    def view(self, name: str, where: str = "") -> list[Row]:
        """Rows of a view from sql/views/, optionally filtered by a BigQuery WHERE clause."""

    @abstractmethod
    def insert(self, table: str, rows: list[Row], row_ids: list[str] | None = None) -> None: ...

    def has_baseline(self, model_version: str) -> bool:
        rows = self.query(
            f"SELECT COUNT(*) AS n FROM `{self.dataset}.baselines` "
            f"WHERE model_version = '{_quote(model_version)}'"
        )
        return bool(rows and rows[0]["n"])


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


class DuckDBEngine(Engine):
    """A short-lived connection per call: other processes (replay, a batch scoring task) may
    write the same file, and DuckDB lets only one process at a time hold it open. Each
    connection first loads the lines the function spooled beside the file
    (prediction_log.line_spool), so every read sees every answered prediction."""

    dataset = "main"

    def __init__(self, path: str | Path, lock_wait_s: float = 15.0) -> None:
        self.path = Path(path)
        self.lock_wait_s = lock_wait_s

    def _connect(self) -> Any:
        return connect_and_load(self.path, self.lock_wait_s)

    def _execute(self, sql: str, params: list[Any] | None = None) -> list[Row]:
        con = self._connect()
        try:
            cur = con.execute(sql, params) if params else con.execute(sql)
            if cur.description is None:
                return []
            names = [d[0] for d in cur.description]
            return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
        finally:
            con.close()

    def query(self, bigquery_sql: str) -> list[Row]:
        return self._execute(_sql.to_duckdb(bigquery_sql))

    def create_tables(self) -> None:
        con = self._connect()
        try:
            for table in _sql.TABLES:  # a file made by an older release is brought up to date
                ensure_table(con, table, load_columns(_sql.SCHEMA_FILES[table]))
        finally:
            con.close()

    def create_views(self) -> None:
        con = self._connect()
        try:
            for name in _sql.view_names():
                body = _sql.to_duckdb(self._view_sql(name))
                con.execute(f'CREATE OR REPLACE VIEW "{name}" AS {body}')
        finally:
            con.close()

    def _view_sql(self, name: str) -> str:
        return _sql.render_view(name, self.dataset, self.rows)

    def view(self, name: str, where: str = "") -> list[Row]:
        # Inline the view's SQL rather than read a stored view: the file is the truth even when
        # the DuckDB file was made by the logger alone.
        sql = f"SELECT * FROM (\n{self._view_sql(name)}\n) AS v"
        return self.query(sql + (f" WHERE {where}" if where else ""))

    def insert(self, table: str, rows: list[Row], row_ids: list[str] | None = None) -> None:
        if not rows:
            return
        names = list(rows[0])
        sql = f'INSERT INTO "{table}" ({", ".join(names)}) VALUES ' + ", ".join(
            "(" + ", ".join("?" for _ in names) + ")" for _ in rows
        )
        self._execute(sql, [r[n] for r in rows for n in names])

    def delete_baseline(self, model_version: str) -> None:
        for table in ("baselines", "baseline_bins"):
            self._execute(f'DELETE FROM "{table}" WHERE model_version = ?', [model_version])


class BigQueryEngine(Engine):
    def __init__(
        self, project: str, dataset: str, client: Any = None, rows: str = "predictions"
    ) -> None:
        self.project = project
        self.dataset = f"{project}.{dataset}"
        self.client = client or bigquery_client(project)
        self.rows = rows

    def query(self, bigquery_sql: str) -> list[Row]:
        from google.api_core.retry import Retry

        job = self.client.query(bigquery_sql, retry=Retry(deadline=30), timeout=60)
        return [dict(r.items()) for r in job.result(timeout=120)]

    def create_tables(self) -> None:
        from google.cloud import bigquery

        self.client.create_dataset(bigquery.Dataset(self.dataset), exists_ok=True)
        for table in _sql.TABLES:
            self.query(_sql.render(_sql.DDL_DIR / f"{table}.sql", dataset=self.dataset))

    def create_views(self) -> None:
        for name in _sql.view_names():
            body = _sql.render_view(name, self.dataset, self.rows)
            self.query(f"CREATE OR REPLACE VIEW `{self.dataset}.{name}` AS\n{body}")

    def view(self, name: str, where: str = "") -> list[Row]:
        sql = f"SELECT * FROM `{self.dataset}.{name}`"
        return self.query(sql + (f" WHERE {where}" if where else ""))

    def insert(self, table: str, rows: list[Row], row_ids: list[str] | None = None) -> None:
        from google.api_core.retry import Retry

        payload = [{k: _json_value(v) for k, v in r.items()} for r in rows]
        errors = self.client.insert_rows_json(
            f"{self.dataset}.{table}",
            payload,
            row_ids=row_ids,
            retry=Retry(deadline=10),
            timeout=30,
        )
        if errors:
            raise RuntimeError(f"insert into {table} failed: {json.dumps(errors)[:500]}")


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def engine_from_uri(uri: str, rows: str = "predictions") -> Engine:
    """duckdb://path or bq://project.dataset[.table] (the PREDICTION_LOG URI works as is); the
    queries read the relation `rows` of that dataset (BigQuery: prediction_log_rows when the
    function logs to stdout)."""
    if uri.startswith("duckdb://"):
        return DuckDBEngine(uri[len("duckdb://") :])
    if uri.startswith("bq://"):
        parts = uri[len("bq://") :].split(".")
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError(f"expected bq://project.dataset[.table], got {uri!r}")
        return BigQueryEngine(parts[0], parts[1], rows=rows)
    raise ValueError(f"monitoring needs a duckdb:// or bq:// log, got {uri!r}")
