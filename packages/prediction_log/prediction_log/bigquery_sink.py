"""The bq:// sink: BigQuery streaming inserts (insert id = row_id), written by the logger's
background thread; and the BigQuery client every part of the project uses (anonymous against
BIGQUERY_EMULATOR_HOST)."""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from prediction_log.schema import row_id
from prediction_log.sink_api import Row, WriteResult, merged

# BigQuery client calls get short deadlines: the logger has its own backoff and dead letter,
# and bqemulator answers a bad row with HTTP 500, which the client would otherwise retry for
# minutes.
BQ_CALL_TIMEOUT_S = 10.0
BQ_RETRY_DEADLINE_S = 2.0
BQ_QUERY_TIMEOUT_S = 30.0  # the lookup of rows already present, before a retry or replay
# BigQuery refuses a streaming insert request over 10 MB. A chunk of the logger's batch_rows rows
# can exceed that (500 rows with 20,000-character texts, each character up to 6 bytes as JSON
# escapes it), so a write is cut into requests of at most this many bytes of row JSON, leaving
# room for the insert ids and the request's envelope.
BQ_MAX_REQUEST_BYTES = 9 * 1024 * 1024


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
            result = merged(result, self._insert(request))
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
            return merged(self._insert(rows[:middle]), self._insert(rows[middle:]))
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

    def outcome_unknown(self, exc: BaseException) -> bool:
        """Whether an insert that raised exc may still land: its request went out and no answer
        came back (a read timeout, a connection dropped mid-request). An HTTP error status means
        BigQuery answered; a refused or timed-out connection means nothing was sent."""
        import requests
        import urllib3
        from google.api_core.exceptions import GoogleAPICallError

        chain = _exception_chain(exc)
        not_sent = (
            ConnectionRefusedError,
            requests.ConnectTimeout,
            urllib3.exceptions.ConnectTimeoutError,
        )
        if any(isinstance(e, (GoogleAPICallError, *not_sent)) for e in chain):
            return False
        in_flight = (
            requests.Timeout,
            requests.ConnectionError,
            urllib3.exceptions.HTTPError,
            OSError,
        )
        return any(isinstance(e, in_flight) for e in chain)

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


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


def _exception_chain(exc: BaseException) -> list[BaseException]:
    """exc and what it wraps: causes, contexts, a RetryError's last error, urllib3's reason."""
    seen: list[BaseException] = []
    todo: list[object] = [exc]
    while todo:
        e = todo.pop()
        if not isinstance(e, BaseException) or any(e is s for s in seen):
            continue
        seen.append(e)
        todo += [e.__cause__, e.__context__, getattr(e, "cause", None), getattr(e, "reason", None)]
        todo += list(e.args)
    return seen
