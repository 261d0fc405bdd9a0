"""Where prediction-log rows go, chosen by a URI (env PREDICTION_LOG):

  bq://project.dataset.table        BigQuery streaming inserts (insert id = request_id-index)
  duckdb:///abs/path.duckdb         embedded DuckDB file (no account needed)
  duckdb://relative/path.duckdb     the same, relative to the working directory
  none                              logging off

A sink's write() returns the rows it could not write, split into retryable ones and ones the
backend rejected as invalid (retrying those cannot help); it raises when nothing was written
for a reason worth retrying (backend down, DuckDB file locked by another process).
write_missing() is the replay path: it writes only rows whose (request_id, instance_index) is
not in the table yet, so a dead-letter file can be replayed any number of times; it raises on a
transient failure and reports invalid rows as rejected.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from prediction_log.schema import (
    KEY_COLUMNS,
    Column,
    duckdb_create_table,
    duckdb_type,
    load_columns,
    row_id,
)

Row = dict[str, Any]

# BigQuery client calls get short deadlines: the logger has its own backoff and dead letter,
# and bqemulator answers a bad row with HTTP 500, which the client would otherwise retry for
# minutes.
BQ_CALL_TIMEOUT_S = 10.0
BQ_RETRY_DEADLINE_S = 2.0
DUCKDB_TABLE = "predictions"


@dataclass
class WriteResult:
    retryable: list[Row] = field(default_factory=list)
    rejected: list[Row] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    inserted: int | None = None  # rows newly added, where the sink can tell


class Sink(Protocol):
    uri: str

    def write(self, rows: list[Row]) -> WriteResult: ...

    def write_missing(self, rows: list[Row]) -> WriteResult: ...

    def close(self) -> None: ...


class NoneSink:
    uri = "none"

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

    def write(self, rows: list[Row]) -> WriteResult:
        from google.api_core.retry import Retry

        errors = self.client.insert_rows_json(
            self.table,
            rows,
            row_ids=[row_id(r) for r in rows],
            retry=Retry(deadline=BQ_RETRY_DEADLINE_S),
            timeout=BQ_CALL_TIMEOUT_S,
        )
        result = WriteResult()
        for err in errors:
            row = rows[err["index"]]
            reasons = {e.get("reason", "") for e in err.get("errors", [])}
            # "invalid" marks the bad row itself; the others in the request are "stopped".
            if "invalid" in reasons:
                result.rejected.append(row)
                result.reasons.append(str(err.get("errors")))
            else:
                result.retryable.append(row)
        return result

    def existing_ids(self, rows: list[Row]) -> set[str]:
        from google.cloud import bigquery

        stamps = [_parse_ts(r["ts"]) for r in rows]
        lo = (min(stamps) - timedelta(seconds=1)).strftime("%Y-%m-%d %H:%M:%S+00:00")
        hi = (max(stamps) + timedelta(seconds=1)).strftime("%Y-%m-%d %H:%M:%S+00:00")
        ids = sorted({r["request_id"] for r in rows})
        # The ts range lets BigQuery prune partitions instead of scanning the whole log.
        query = (
            f"SELECT request_id, instance_index FROM `{self.table}` "
            "WHERE ts >= TIMESTAMP(@lo) AND ts <= TIMESTAMP(@hi) AND request_id IN UNNEST(@ids)"
        )
        config = bigquery.QueryJobConfig(
            query_parameters=[
                bigquery.ScalarQueryParameter("lo", "STRING", lo),
                bigquery.ScalarQueryParameter("hi", "STRING", hi),
                bigquery.ArrayQueryParameter("ids", "STRING", ids),
            ]
        )
        result = self.client.query(query, job_config=config).result(timeout=60)
        return {f"{r['request_id']}-{r['instance_index']}" for r in result}

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


class DuckDBSink:
    """One short-lived connection per write: DuckDB allows one writing process per file, so the
    file stays free for other processes (a second worker, `make dashboard`) between flushes."""

    def __init__(self, uri: str, columns: list[Column] | None = None) -> None:
        self.uri = uri
        self.path = Path(uri[len("duckdb://") :])
        if not str(self.path) or str(self.path) == ".":
            raise ValueError(f"expected duckdb://path/to/file.duckdb, got {uri!r}")
        self.columns = columns or load_columns()
        self._lock = threading.Lock()
        self._names = [c.name for c in self.columns]
        self._list_types = [
            "VARCHAR" if c.type == "TIMESTAMP" else duckdb_type(c.type) for c in self.columns
        ]

    def _insert(self, rows: list[Row]) -> int:
        import duckdb  # lazy: not in the function's cloud requirements

        self.path.parent.mkdir(parents=True, exist_ok=True)
        cols = ", ".join(f'"{n}"' for n in self._names)
        # One typed list per column, unnested: about 4x faster than a VALUES list of scalar
        # parameters. Timestamps travel as ISO text and are cast by the INSERT.
        select = ", ".join(f"UNNEST(?::{t}[])" for t in self._list_types)
        with self._lock:
            con = duckdb.connect(str(self.path))
            try:
                con.execute(duckdb_create_table(DUCKDB_TABLE, self.columns))
                before = con.execute(f'SELECT COUNT(*) FROM "{DUCKDB_TABLE}"').fetchone()
                for start in range(0, len(rows), 5000):
                    chunk = rows[start : start + 5000]
                    # OR IGNORE + the primary key on (request_id, instance_index) is what makes
                    # retries and replays idempotent.
                    con.execute(
                        f'INSERT OR IGNORE INTO "{DUCKDB_TABLE}" ({cols}) SELECT {select}',
                        [[r.get(n) for r in chunk] for n in self._names],
                    )
                after = con.execute(f'SELECT COUNT(*) FROM "{DUCKDB_TABLE}"').fetchone()
            finally:
                con.close()
        return int(after[0]) - int(before[0])  # type: ignore[index]

    def write(self, rows: list[Row]) -> WriteResult:
        import duckdb

        try:
            inserted = self._insert(rows)
        except (
            duckdb.ConversionException,
            duckdb.ConstraintException,
            duckdb.InvalidInputException,
        ) as exc:
            # A bad value poisons the whole statement; find the bad rows one by one so the
            # good ones still land and only the bad ones go to the dead letter.
            if len(rows) == 1:
                return WriteResult(rejected=list(rows), reasons=[str(exc)], inserted=0)
            result = WriteResult(inserted=0)
            for row in rows:
                single = self.write([row])
                result.rejected += single.rejected
                result.reasons += single.reasons
                result.inserted += single.inserted or 0
            return result
        return WriteResult(inserted=inserted)

    def write_missing(self, rows: list[Row]) -> WriteResult:
        # The primary key does the anti-join: INSERT OR IGNORE skips rows already there.
        return self.write(rows) if rows else WriteResult(inserted=0)

    def close(self) -> None:
        pass


def make_sink(uri: str) -> Sink:
    uri = uri.strip()
    if uri in ("", "none"):
        return NoneSink()
    if uri.startswith("bq://"):
        return BigQuerySink(uri)
    if uri.startswith("duckdb://"):
        return DuckDBSink(uri)
    raise ValueError(f"unknown PREDICTION_LOG {uri!r}: use bq://, duckdb:// or none")


__all__ = [
    "KEY_COLUMNS",
    "BigQuerySink",
    "DuckDBSink",
    "NoneSink",
    "Sink",
    "WriteResult",
]
