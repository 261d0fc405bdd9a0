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

A sink's write() returns the rows it could not write, split into retryable ones and ones the
backend rejected as invalid (retrying those cannot help); it raises when nothing was written
for a reason worth retrying (backend down, DuckDB file locked by another process).
write_missing() is the replay path, and the logger's retry after a write that raised (it may
have landed): it writes only rows whose row_id is not in the table yet, so a dead-letter file can
be replayed any number of times; it raises on a transient failure and
reports invalid rows as rejected. A sink whose `synchronous` is true is written by the request
thread itself (it is cheap and local); the others by the logger's background thread.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from prediction_log.duckdb_table import ensure_table
from prediction_log.schema import KEY_COLUMNS, Column, load_columns, row_id

Row = dict[str, Any]

# BigQuery client calls get short deadlines: the logger has its own backoff and dead letter,
# and bqemulator answers a bad row with HTTP 500, which the client would otherwise retry for
# minutes.
BQ_CALL_TIMEOUT_S = 10.0
BQ_RETRY_DEADLINE_S = 2.0
BQ_QUERY_TIMEOUT_S = 30.0  # the lookup of rows already present, before a retry or replay
DUCKDB_TABLE = "predictions"
# BigQuery refuses a streaming insert request over 10 MB. A chunk of the logger's batch_rows rows
# can exceed that (500 rows with 20,000-character texts, each character up to 6 bytes as JSON
# escapes it), so a write is cut into requests of at most this many bytes of row JSON, leaving
# room for the insert ids and the request's envelope.
BQ_MAX_REQUEST_BYTES = 9 * 1024 * 1024


@dataclass
class WriteResult:
    retryable: list[Row] = field(default_factory=list)
    rejected: list[Row] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    inserted: int | None = None  # rows newly added, where the sink can tell


class Sink(Protocol):
    uri: str
    synchronous: bool

    def write(self, rows: list[Row]) -> WriteResult: ...

    def write_missing(self, rows: list[Row]) -> WriteResult: ...

    def close(self) -> None: ...


class NoneSink:
    uri = "none"
    synchronous = True

    def write(self, rows: list[Row]) -> WriteResult:
        return WriteResult()

    def write_missing(self, rows: list[Row]) -> WriteResult:
        return WriteResult(inserted=0)

    def close(self) -> None:
        pass


def _parse_ts(value: Any) -> datetime:
    parsed = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def bigquery_client(project: str | None = None) -> Any:
    """A BigQuery client; anonymous against BIGQUERY_EMULATOR_HOST (bqemulator in tests)."""
    from google.cloud import bigquery  # lazy: import cost stays off the cold start

    emulator = os.environ.get("BIGQUERY_EMULATOR_HOST")
    if emulator:
        from google.api_core.client_options import ClientOptions
        from google.auth.credentials import AnonymousCredentials

        endpoint = emulator if "://" in emulator else f"http://{emulator}"
        return bigquery.Client(
            project=project,
            credentials=AnonymousCredentials(),
            client_options=ClientOptions(api_endpoint=endpoint),
        )
    return bigquery.Client(project=project)


class BigQuerySink:
    synchronous = False

    def __init__(self, uri: str, client: Any = None) -> None:
        self.uri = uri
        self.table = uri[len("bq://") :]
        parts = self.table.split(".")
        if len(parts) != 3 or not all(parts):
            raise ValueError(f"expected bq://project.dataset.table, got {uri!r}")
        self.project = parts[0]
        self._client = client
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = bigquery_client(self.project)
            return self._client

    def prepare(self) -> None:
        """Make the client and import what a write needs (the logger's writer thread calls it
        when it starts)."""
        import google.api_core.exceptions
        import google.api_core.retry  # noqa: F401

        self.client  # noqa: B018

    def write(self, rows: list[Row]) -> WriteResult:
        """Insert rows in requests under BigQuery's size limit; a row that alone is over it can
        never be inserted and is rejected."""
        result = WriteResult()
        for request, oversized in _request_batches(rows, BQ_MAX_REQUEST_BYTES):
            if oversized:
                result.rejected.append(request[0])
                result.reasons.append(
                    f"row of {oversized} bytes as JSON: over BigQuery's request size limit"
                )
                continue
            result = _merge(result, self._insert(request))
        return result

    def _insert(self, rows: list[Row]) -> WriteResult:
        from google.api_core.exceptions import BadRequest
        from google.api_core.retry import Retry

        try:
            errors = self.client.insert_rows_json(
                self.table,
                rows,
                row_ids=[row_id(r) for r in rows],
                retry=Retry(deadline=BQ_RETRY_DEADLINE_S),
                timeout=BQ_CALL_TIMEOUT_S,
            )
        except BadRequest as exc:
            # The request as a whole was refused (a row BigQuery cannot even parse): halve it
            # until the culprit stands alone, so it alone is rejected and its neighbours land.
            if len(rows) == 1:
                return WriteResult(rejected=list(rows), reasons=[f"BadRequest: {exc}"[:500]])
            middle = len(rows) // 2
            return _merge(self._insert(rows[:middle]), self._insert(rows[middle:]))
        result = WriteResult()
        for err in errors:
            row = rows[err["index"]]
            reasons = {e.get("reason", "") for e in err.get("errors", [])}
            # "invalid" marks a row BigQuery will never take; the others in the request are
            # "stopped" (not written because of it) and are retried on their own.
            if "invalid" in reasons:
                result.rejected.append(row)
                result.reasons.append(json.dumps(err.get("errors"), default=str)[:500])
            else:
                result.retryable.append(row)
        if result.rejected and result.retryable:
            # The stopped rows failed only because of their invalid neighbours: send them again
            # at once, without those (BigQuery is up; no backoff needed).
            again = self._insert(result.retryable)
            again.rejected, again.reasons = (
                result.rejected + again.rejected,
                result.reasons + again.reasons,
            )
            return again
        return result

    def existing_ids(self, rows: list[Row]) -> set[str]:
        from google.api_core.retry import Retry
        from google.cloud import bigquery

        stamps = [_parse_ts(r["ts"]) for r in rows]
        lo = (min(stamps) - timedelta(seconds=1)).strftime("%Y-%m-%d %H:%M:%S+00:00")
        hi = (max(stamps) + timedelta(seconds=1)).strftime("%Y-%m-%d %H:%M:%S+00:00")
        ids = sorted({row_id(r) for r in rows})
        # Rows written before row_id existed have it NULL: their key is their old insert id.
        # The ts range lets BigQuery prune partitions instead of scanning the whole log.
        key = "COALESCE(row_id, CONCAT(request_id, '-', CAST(instance_index AS STRING)))"
        query = (
            f"SELECT {key} AS row_id FROM `{self.table}` "
            f"WHERE ts >= TIMESTAMP(@lo) AND ts <= TIMESTAMP(@hi) AND {key} IN UNNEST(@ids)"
        )
        config = bigquery.QueryJobConfig(
            query_parameters=[
                bigquery.ScalarQueryParameter("lo", "STRING", lo),
                bigquery.ScalarQueryParameter("hi", "STRING", hi),
                bigquery.ArrayQueryParameter("ids", "STRING", ids),
            ]
        )
        # Short deadlines as for inserts: the caller retries with its own backoff (the logger)
        # or reports the failure (replay); the client's default would retry for ten minutes.
        job = self.client.query(
            query,
            job_config=config,
            timeout=BQ_CALL_TIMEOUT_S,
            retry=Retry(deadline=BQ_RETRY_DEADLINE_S),
            job_retry=None,
        )
        result = job.result(timeout=BQ_QUERY_TIMEOUT_S, retry=Retry(deadline=BQ_RETRY_DEADLINE_S))
        return {r["row_id"] for r in result}

    def write_missing(self, rows: list[Row]) -> WriteResult:
        if not rows:
            return WriteResult(inserted=0)
        present = self.existing_ids(rows)
        missing = list({row_id(r): r for r in rows if row_id(r) not in present}.values())
        if not missing:
            return WriteResult(inserted=0)
        result = self.write(missing)
        if result.retryable:
            raise RuntimeError(
                f"{len(result.retryable)} of {len(missing)} rows not written: {result.reasons[:3]}"
            )
        result.inserted = len(missing) - len(result.rejected)
        return result

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


def duckdb_path(uri: str) -> Path:
    """The file of a duckdb:// URI."""
    path = Path(uri[len("duckdb://") :])
    if not uri.startswith("duckdb://") or not str(path) or str(path) == ".":
        raise ValueError(f"expected duckdb://path/to/file.duckdb, got {uri!r}")
    return path


def _sql_text(value: str) -> str:
    """A SQL string literal: DuckDB's standard strings know no escape but the doubled quote."""
    return "'" + value.replace("'", "''") + "'"


def _request_batches(rows: list[Row], max_bytes: int) -> list[tuple[list[Row], int]]:
    """Consecutive groups of rows whose JSON (as the BigQuery client sends it) stays under
    max_bytes; a row that alone is over it comes alone, with its size (0 for the others)."""
    batches: list[tuple[list[Row], int]] = []
    current: list[Row] = []
    size = 0
    for row in rows:
        n = len(json.dumps(row, default=str)) + 64  # the insert id and the row's envelope
        if n > max_bytes:
            batches.append(([row], n))
            continue
        if current and size + n > max_bytes:
            batches.append((current, 0))
            current, size = [], 0
        current.append(row)
        size += n
    if current:
        batches.append((current, 0))
    return batches


def _merge(a: WriteResult, b: WriteResult) -> WriteResult:
    return WriteResult(
        retryable=a.retryable + b.retryable,
        rejected=a.rejected + b.rejected,
        reasons=a.reasons + b.reasons,
    )


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
    "Sink",
    "StdoutSink",
    "WriteResult",
]
