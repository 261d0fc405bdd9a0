"""Where prediction-log rows go, chosen by a URI (env PREDICTION_LOG):

  stdout                            one structured JSON line per row on stdout, written before
                                    the response leaves; Cloud Logging routes them to BigQuery
                                    (production: terraform/prediction_log_sink.tf)
  bq://project.dataset.table        BigQuery streaming inserts from a background thread
                                    (insert id = row_id)
  duckdb:///abs/path.duckdb         embedded DuckDB file (no account needed; the local default);
  duckdb://relative/path.duckdb     relative to the working directory. A serving process writes
                                    it through prediction_log.line_spool; DuckDBSink below
                                    writes the table itself (replay)
  none                              logging off

What a sink is (write, write_missing, synchronous) is in prediction_log.sink_api; the
BigQuery sink is in prediction_log.bigquery_sink.
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

from prediction_log.bigquery_sink import BigQuerySink
from prediction_log.duckdb_table import ensure_table
from prediction_log.schema import KEY_COLUMNS, Column, load_columns
from prediction_log.sink_api import Row, Sink, WriteResult

DUCKDB_TABLE = "predictions"


class NoneSink:
    uri = "none"
    synchronous = True

    def write(self, rows: list[Row]) -> WriteResult:
        return WriteResult()

    def write_missing(self, rows: list[Row]) -> WriteResult:
        return WriteResult(inserted=0)

    def close(self) -> None:
        pass


class UnusableSink:
    """A PREDICTION_LOG that cannot be opened: every write fails, so rows go to the dead letter."""

    synchronous = False

    def __init__(self, uri: str) -> None:
        self.uri = uri

    def write(self, rows: list[Row]) -> Any:
        raise RuntimeError(f"unusable PREDICTION_LOG {self.uri!r}")

    def write_missing(self, rows: list[Row]) -> Any:
        raise RuntimeError(f"unusable PREDICTION_LOG {self.uri!r}")

    def close(self) -> None:
        pass


def duckdb_path(uri: str) -> Path:
    """The file of a duckdb:// URI."""
    path = Path(uri[len("duckdb://") :])
    if not uri.startswith("duckdb://") or not str(path) or str(path) == ".":
        raise ValueError(f"expected duckdb://path/to/file.duckdb, got {uri!r}")
    return path


def _sql_text(value: str) -> str:
    """A SQL string literal: DuckDB's standard strings know no escape but the doubled quote."""
    return "'" + value.replace("'", "''") + "'"


def _duckdb_insert(con: Any, rows: list[Row], names: list[str]) -> int:
    cols = ", ".join(f'"{n}"' for n in names)
    fields = ", ".join(f"r[{_sql_text(n)}]" for n in names)
    # Every value is read from the JSON as text and cast by the INSERT into the column's type,
    # so a value of the wrong type fails the statement (and is rejected below) instead of
    # silently becoming NULL. Timestamps are ISO text already.
    structure = _sql_text(json.dumps([dict.fromkeys(names, "VARCHAR")]))
    inserted = 0
    for start in range(0, len(rows), 1000):
        chunk = [{n: r.get(n) for n in names} for r in rows[start : start + 1000]]
        # The rows travel as one JSON text literal unpacked by from_json, not as bound
        # parameters: binding any parameter makes DuckDB import pandas and pyarrow, about
        # 70 MiB and half a second of CPU. OR IGNORE + the primary key on row_id is what makes
        # retries, replays and reloads idempotent; the statement returns the rows it added.
        rows_json = _sql_text(json.dumps(chunk, default=str))
        added = con.execute(
            f'INSERT OR IGNORE INTO "{DUCKDB_TABLE}" ({cols}) SELECT {fields} '
            f"FROM (SELECT UNNEST(from_json({rows_json}, {structure})) AS r)"
        ).fetchone()
        inserted += int(added[0]) if added else 0
    return inserted


def insert_into_duckdb(con: Any, rows: list[Row], columns: list[Column]) -> WriteResult:
    """Insert rows into the log table on an open connection; a row DuckDB cannot take (a value
    of the wrong type) is rejected alone, with its reason, and its neighbours still land."""
    import duckdb

    bad_value = (
        duckdb.ConversionException,
        duckdb.ConstraintException,
        duckdb.InvalidInputException,
    )
    names = [c.name for c in columns]
    try:
        return WriteResult(inserted=_duckdb_insert(con, rows, names))
    except bad_value:
        pass
    # A bad value poisons the whole statement; insert the rows one by one (same connection) so
    # the good ones still land and only the bad ones are rejected.
    result = WriteResult(inserted=0)
    for row in rows:
        try:
            result.inserted = (result.inserted or 0) + _duckdb_insert(con, [row], names)
        except bad_value as exc:
            result.rejected.append(row)
            result.reasons.append(str(exc)[:500])
    return result


class DuckDBSink:
    """Writes the DuckDB table: replay does, and so does a PredictionLogger given it directly (a
    serving process writes prediction_log.line_spool's files instead; see logger.build_logger).
    It keeps one connection while flushes keep coming. DuckDB lets one process at a time write a
    file, so the connection is closed after HOLD_S open or IDLE_S without a write, and other
    processes (`make dashboard`, a batch scoring task) get the file between two flushes; their
    connect_waiting retries until it is free.

    A connection per flush would cost far more: closing one checkpoints the file and the next one
    builds the key index up again, about 125 ms of CPU per flush against 21 ms on a kept
    connection (500 rows into a 30,000-row table, `python -m experiments.duckdb_flush_cost`).
    The price is memory: the index and the rows since the last checkpoint stay with the
    connection until it is closed. DuckDB runs with one thread here (SET, not a connect option,
    so other connections in the process keep the same configuration): its default of a worker
    per core competes with onnxruntime for the cores."""

    synchronous = False
    HOLD_S = 5.0
    IDLE_S = 1.0

    def __init__(self, uri: str, columns: list[Column] | None = None) -> None:
        self.uri = uri
        self.path = duckdb_path(uri)
        self.columns = columns or load_columns()
        self._lock = threading.Lock()
        self._table_ready = False
        self._con: Any = None
        self._opened_at = 0.0
        self._written_at = 0.0

    def _connection(self) -> Any:
        import duckdb  # lazy: not in the function's cloud requirements

        if self._con is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            con = duckdb.connect(str(self.path))
            try:
                con.execute("SET threads = 1")
                if not self._table_ready:  # once per process: a file from before is migrated
                    ensure_table(con, DUCKDB_TABLE, self.columns)
                    self._table_ready = True
            except BaseException:
                con.close()
                raise
            self._con, self._opened_at = con, time.monotonic()
        return self._con

    def _disconnect(self) -> None:
        con, self._con = self._con, None
        if con is not None:
            # Closing a broken connection must not hide the error that broke it.
            with contextlib.suppress(Exception):
                con.close()

    def write(self, rows: list[Row]) -> WriteResult:
        with self._lock:
            con = self._connection()
            try:
                return insert_into_duckdb(con, rows, self.columns)
            except BaseException:
                self._disconnect()  # a failed connection is not reused
                raise
            finally:
                self._written_at = time.monotonic()
                if self._written_at - self._opened_at >= self.HOLD_S:
                    self._disconnect()

    def write_missing(self, rows: list[Row]) -> WriteResult:
        # The primary key does the anti-join: INSERT OR IGNORE skips rows already there.
        return self.write(rows) if rows else WriteResult(inserted=0)

    def release_idle(self) -> None:
        """Close the connection once no write came for IDLE_S (the logger's writer calls this
        whenever it has nothing to write), so the file is free while traffic pauses."""
        with self._lock:
            if self._con is not None and time.monotonic() - self._written_at >= self.IDLE_S:
                self._disconnect()

    def close(self) -> None:
        with self._lock:
            self._disconnect()


class StdoutSink:
    """One JSON line per row on stdout, flushed before log() returns, so before the response.

    On Cloud Run (Cloud Functions 2nd gen) the platform reads stdout as it is written and turns
    each JSON line into a structured log entry; a Logging sink routes the entries into BigQuery
    (terraform/prediction_log_sink.tf) and sql/logging/prediction_log_rows.sql reads them back in
    the contract's shape. A background thread would not do: the CPU is throttled between
    requests, so after the last response of a burst it may never run again before the instance
    is stopped. Writing a line costs microseconds and needs no network or account.

    The row travels as one JSON string (PAYLOAD_FIELD), not as loose fields: Logging derives the
    BigQuery columns of loose fields from the values it sees (numbers become FLOAT64, a null
    never makes a column), so their types would drift; a string column is always a string, and
    the view parses it with the contract's types.

    The line's `time` (TIME_FIELD, one of Logging's special fields) is the row's ts, so the log
    entry's timestamp, on which the sink's table is partitioned by day, is the row's own time:
    the view reads ts from that column, and a query over a window of ts reads only the
    partitions of that window instead of the whole retention.
    """

    uri = "stdout"
    synchronous = True
    MESSAGE = "prediction_log_row"  # what the Logging sink's filter matches
    PAYLOAD_FIELD = "prediction_log_row"
    TIME_FIELD = "time"

    def __init__(self, stream: Any = None) -> None:
        self._stream = stream
        self._lock = threading.Lock()  # one request's lines stay together

    @classmethod
    def line(cls, row: Row) -> str:
        payload = json.dumps(row, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        entry = {
            "severity": "INFO",
            "message": cls.MESSAGE,
            cls.TIME_FIELD: row.get("ts"),
            cls.PAYLOAD_FIELD: payload,
        }
        return json.dumps(entry, separators=(",", ":"), ensure_ascii=False)

    def write(self, rows: list[Row]) -> WriteResult:
        text = "".join(self.line(r) + "\n" for r in rows)
        stream = self._stream or sys.stdout  # servers and test runners swap sys.stdout
        with self._lock:
            stream.write(text)
            stream.flush()
        return WriteResult(inserted=len(rows))

    def write_missing(self, rows: list[Row]) -> WriteResult:
        raise ValueError("stdout is not a table: replay into bq:// or duckdb://")

    def close(self) -> None:
        pass


def make_sink(uri: str) -> Sink:
    uri = uri.strip()
    if uri in ("", "none"):
        return NoneSink()
    if uri == "stdout":
        return StdoutSink()
    if uri.startswith("bq://"):
        return BigQuerySink(uri)
    if uri.startswith("duckdb://"):
        return DuckDBSink(uri)
    raise ValueError(f"unknown PREDICTION_LOG {uri!r}: use stdout, bq://, duckdb:// or none")


__all__ = [
    "KEY_COLUMNS",
    "BigQuerySink",
    "DuckDBSink",
    "NoneSink",
    "Row",
    "Sink",
    "StdoutSink",
    "UnusableSink",
    "WriteResult",
]
