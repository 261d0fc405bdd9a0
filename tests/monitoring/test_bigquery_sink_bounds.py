"""The bq:// sink's bounds: every streaming-insert request stays under BigQuery's 10 MB limit
whatever the rows weigh (a row alone over it is rejected, not retried), and while BigQuery is
slow a batch is retried for at most the logger's write deadline before it goes to the dead
letter, so rows do not sit in memory through every attempt of every call."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from prediction_log.bigquery_sink import BigQuerySink
from prediction_log.dead_letter import DeadLetter
from prediction_log.logger import PredictionLogger
from prediction_log.rows import prepare_row
from prediction_log.schema import load_columns
from tests.monitoring._crafted import make_rows

LIMIT = 10 * 1024 * 1024  # BigQuery's streaming insert request limit


class _RecordingClient:
    """Stands in for google.cloud.bigquery.Client: records each insert request's size."""

    def __init__(self) -> None:
        self.requests: list[int] = []
        self.rows = 0

    def insert_rows_json(self, table: str, rows: list[dict[str, Any]], **kw: Any) -> list:
        body = {
            "rows": [{"insertId": i, "json": r} for i, r in zip(kw["row_ids"], rows, strict=True)]
        }
        self.requests.append(len(json.dumps(body).encode()))
        self.rows += len(rows)
        return []

    def close(self) -> None:
        pass


def _rows(n: int, text: str) -> list[dict[str, Any]]:
    columns = load_columns()
    rows = [prepare_row(r, columns, keep_text=True).row for r in make_rows(n, seed=31)]
    for row in rows:
        row["text"] = text
    return rows


def test_large_rows_are_sent_in_requests_under_the_limit() -> None:
    client = _RecordingClient()
    sink = BigQuerySink("bq://p.d.predictions", client=client)
    # 500 rows of 20,000 characters (the function's MAX_TEXT_CHARS), non-ASCII: each character
    # is six bytes once JSON escapes it, about 60 MB in all.
    rows = _rows(500, "é" * 20_000)
    result = sink.write(rows)
    assert result.rejected == [] and result.retryable == []
    assert client.rows == 500
    assert len(client.requests) > 1
    assert max(client.requests) < LIMIT, client.requests


def test_a_row_alone_over_the_limit_is_rejected_and_its_neighbours_land() -> None:
    client = _RecordingClient()
    sink = BigQuerySink("bq://p.d.predictions", client=client)
    rows = _rows(3, "ok")
    rows[1]["text"] = "é" * 2_000_000  # 12 MB as JSON
    result = sink.write(rows)
    assert [r["row_id"] for r in result.rejected] == [rows[1]["row_id"]]
    assert "request size limit" in result.reasons[0]
    assert client.rows == 2 and max(client.requests) < LIMIT


class _SlowSink:
    """BigQuery slower than the call timeout: every call fails after `call_s`."""

    uri = "slow://"

    def __init__(self, call_s: float) -> None:
        self.call_s = call_s
        self.calls = 0

    def write(self, rows: list[dict[str, Any]]) -> Any:
        self.calls += 1
        time.sleep(self.call_s)
        raise TimeoutError("insert timed out")

    write_missing = write

    def close(self) -> None:
        pass


def test_a_slow_backend_holds_a_batch_no_longer_than_the_write_deadline(tmp_path: Path) -> None:
    sink = _SlowSink(call_s=0.3)
    logger = PredictionLogger(
        sink,
        DeadLetter(str(tmp_path / "dead")),
        batch_rows=10,
        max_age_s=0.05,
        max_attempts=10,
        backoff_s=0.2,
        write_deadline_s=1.0,
    )
    rows = make_rows(10, seed=32)
    start = time.monotonic()
    logger.log(rows)
    spilled = threading.Event()
    while time.monotonic() - start < 10 and not spilled.is_set():
        if logger.counts["spilled"] == 10:
            spilled.set()
        time.sleep(0.02)
    held = time.monotonic() - start
    logger.close()
    # Ten attempts of 0.3 s calls with 0.2, 0.4, 0.8 ... s of backoff would hold the rows for
    # about 100 s; the deadline (1 s) plus the call in progress (0.3 s) bounds it. The bound
    # below leaves room for a busy machine and still fails by far without the deadline.
    assert spilled.is_set(), logger.counts
    assert held < 5.0, held
    assert sink.calls < 10
