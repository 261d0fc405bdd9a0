"""The logger the function calls: buffering, flush triggers, text dropping, never raising,
dead letter for rows that cannot be written, SIGTERM and exit with rows still buffered."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest

import prediction_log.logger as prediction_logger
import prediction_log.schema as log_schema
from monitoring._engines import BigQueryEngine
from prediction_log.dead_letter import DeadLetter
from prediction_log.sinks import DuckDBSink, WriteResult
from tests.monitoring._crafted import make_rows

ROOT = Path(__file__).resolve().parents[2]


def _count(db: Path, where: str = "TRUE") -> int:
    con = duckdb.connect(str(db))  # same config as the writer: it may be open in this process
    try:
        return int(con.execute(f"SELECT COUNT(*) FROM predictions WHERE {where}").fetchone()[0])
    finally:
        con.close()


def _table(bq: BigQueryEngine) -> str:
    return f"{bq.dataset}.predictions"


def _count_bq(bq: BigQueryEngine) -> int:
    return len(bq.query(f"SELECT row_id FROM `{_table(bq)}`"))


def _dead_rows(folder: Path) -> list[dict[str, Any]]:
    return [r for f in DeadLetter(str(folder)).pending() for r in f.rows]


def _rejected_rows(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for f in folder.glob("rejected-*.jsonl") for line in f.open()]


def _logger(tmp_path: Path, sink: Any = None, **kw: Any) -> prediction_logger.PredictionLogger:
    sink = sink or DuckDBSink(f"duckdb://{tmp_path / 'log.duckdb'}")
    return prediction_logger.PredictionLogger(sink, DeadLetter(str(tmp_path / "dead")), **kw)


def test_rows_land_once_and_text_is_dropped_unless_asked(tmp_path: Path) -> None:
    rows = make_rows(1200)
    logger = _logger(tmp_path, batch_rows=100)
    for start in range(0, len(rows), 3):
        logger.log(rows[start : start + 3])
    logger.log(rows[:10])  # the same rows again (same row_id): stored once
    logger.close()
    db = tmp_path / "log.duckdb"
    assert _count(db) == 1200
    assert _count(db, "text IS NOT NULL") == 0

    kept = _logger(tmp_path / "kept", log_text=True)
    kept.log(rows[:5])
    kept.close()
    assert _count(tmp_path / "kept" / "log.duckdb", "text IS NOT NULL") == 5


def test_rows_are_flushed_by_age_without_a_flush_call(tmp_path: Path) -> None:
    logger = _logger(tmp_path, batch_rows=10_000, max_age_s=0.2)
    logger.log(make_rows(3))
    deadline = time.monotonic() + 30  # max_age_s is 0.2 s; the rest is room for a busy machine
    while time.monotonic() < deadline:
        try:
            if _count(tmp_path / "log.duckdb") == 3:
                break
        except duckdb.Error:  # the writer has not created the file or table yet
            pass
        time.sleep(0.1)
    assert _count(tmp_path / "log.duckdb") == 3
    logger.close()


class _BrokenSink:
    uri = "broken://"

    def __init__(self) -> None:
        self.calls = 0
        self.threads: set[int] = set()  # the threads that called the backend

    def write(self, rows: list[dict[str, Any]]) -> WriteResult:
        self.calls += 1
        self.threads.add(threading.get_ident())
        time.sleep(0.05)  # a slow, failing backend
        raise ConnectionError("backend down")

    def write_missing(self, rows: list[dict[str, Any]]) -> int:
        self.calls += 1
        self.threads.add(threading.get_ident())
        raise ConnectionError("backend down")

    def close(self) -> None:
        pass


def test_failing_sink_never_raises_or_blocks_and_rows_spill(tmp_path: Path) -> None:
    sink = _BrokenSink()
    logger = _logger(tmp_path, sink=sink, max_attempts=3, backoff_s=0.01, max_age_s=0.05)
    rows = make_rows(50)
    for row in rows:
        logger.log([row])
    logger.flush(timeout=10)
    # Shown by who called the backend, not by a stopwatch that a busy machine can fail.
    assert sink.threads and threading.get_ident() not in sink.threads, "log() called the sink"
    assert sink.calls >= 3  # retried
    spilled = _dead_rows(tmp_path / "dead")
    assert sorted(r["row_id"] for r in spilled) == sorted(r["row_id"] for r in rows)
    assert all(r["text"] is None for r in spilled)
    logger.close()


class _AppendingSink:
    """A table without insert-id dedup (bqemulator's behaviour; BigQuery's dedup is best effort):
    write() appends whatever it gets. The first write lands and then times out, as a call does
    when the backend is slower than the client's deadline."""

    uri = "appending://"

    def __init__(self) -> None:
        self.table: list[dict[str, Any]] = []
        self.timeouts_left = 1

    def write(self, rows: list[dict[str, Any]]) -> WriteResult:
        self.table += rows
        if self.timeouts_left:
            self.timeouts_left -= 1
            raise TimeoutError("read timed out after the rows were taken")
        return WriteResult(inserted=len(rows))

    def write_missing(self, rows: list[dict[str, Any]]) -> WriteResult:
        present = {r["row_id"] for r in self.table}
        missing = [r for r in rows if r["row_id"] not in present]
        self.table += missing
        return WriteResult(inserted=len(missing))

    def close(self) -> None:
        pass


def test_a_write_that_timed_out_after_landing_is_not_written_twice(tmp_path: Path) -> None:
    sink = _AppendingSink()
    logger = _logger(tmp_path, sink=sink, backoff_s=0.01)
    rows = make_rows(30)
    logger.log(rows)
    # Flushed while running: at close the writer spills instead of retrying (replay would then
    # skip the rows already there), which is not what this test is about.
    logger.flush(timeout=30)
    logger.close()
    assert sorted(r["row_id"] for r in sink.table) == sorted(r["row_id"] for r in rows)
    assert _dead_rows(tmp_path / "dead") == []
    assert logger.counts["written"] == 30


def test_bad_row_is_set_aside_with_its_reason_and_the_rest_land(tmp_path: Path) -> None:
    rows = make_rows(20)
    rows[7]["fake_probability"] = "not a number"
    logger = _logger(tmp_path)
    logger.log(rows)
    logger.close()
    assert _count(tmp_path / "log.duckdb") == 19
    # Not in the replayable dead letter (it would fail on every replay), but kept for a person.
    assert _dead_rows(tmp_path / "dead") == []
    (rejected,) = _rejected_rows(tmp_path / "dead")
    assert rejected["row_id"] == rows[7]["row_id"] and "not a number" in rejected["_reason"]
    assert logger.counts["rejected"] == 1


def test_bad_log_uri_sends_rows_to_dead_letter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PREDICTION_LOG", "postgres://nope")
    monkeypatch.setenv("DEAD_LETTER_URI", str(tmp_path / "dead"))
    logger = prediction_logger._from_env()
    logger.log(make_rows(4))
    logger.close()
    assert len(_dead_rows(tmp_path / "dead")) == 4


def test_none_logs_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREDICTION_LOG", "none")
    monkeypatch.setenv("DEAD_LETTER_URI", str(tmp_path / "dead"))
    logger = prediction_logger._from_env()
    logger.log(make_rows(4))
    logger.close()
    assert logger.counts["logged"] == 0 and not (tmp_path / "dead").exists()


_CHILD = """
import json, signal, sys, time
{before}
from prediction_log.logger import get_logger
from tests.monitoring._crafted import make_rows
get_logger().log(make_rows({n}))
print("ready", flush=True)
{after}
"""


def _child(
    tmp_path: Path, table: str, before: str = "", after: str = "time.sleep(60)", n: int = 300
):
    # bq:// is the sink that buffers (stdout and duckdb:// write before log() returns).
    env = dict(
        os.environ,
        PREDICTION_LOG=f"bq://{table}",
        DEAD_LETTER_URI=str(tmp_path / "dead"),
        PREDICTION_LOG_MAX_AGE_S="600",  # nothing is flushed by age: rows are still buffered
        PREDICTION_LOG_BATCH_ROWS="100000",
    )
    code = _CHILD.format(before=before, after=after, n=n)
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read() if proc.stderr else ""
    return proc


@pytest.mark.slow
def test_sigterm_with_rows_buffered_loses_none_and_still_exits(
    tmp_path: Path, bq: BigQueryEngine
) -> None:
    proc = _child(tmp_path, _table(bq))
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == -signal.SIGTERM  # the default action still happens
    assert _count_bq(bq) == 300


@pytest.mark.slow
def test_sigterm_chains_the_servers_own_handler(tmp_path: Path, bq: BigQueryEngine) -> None:
    marker = tmp_path / "server_handler_ran"
    before = (
        "def server_stop(signum, frame):\n"
        f"    open({str(marker)!r}, 'w').close()\n"
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, server_stop)"
    )
    proc = _child(tmp_path, _table(bq), before=before)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert marker.exists()
    assert _count_bq(bq) == 300


@pytest.mark.slow
def test_normal_exit_with_rows_buffered_loses_none(tmp_path: Path, bq: BigQueryEngine) -> None:
    # gunicorn workers leave through sys.exit after their own SIGTERM handling: atexit flushes.
    # It exits after its writer thread made the BigQuery client, as a serving instance has; a
    # process that exits within a second of its first row spills them to the dead letter.
    proc = _child(tmp_path, _table(bq), after="time.sleep(3); sys.exit(0)", n=50)
    assert proc.wait(timeout=30) == 0
    assert _count_bq(bq) == 50
    assert json.dumps(_dead_rows(tmp_path / "dead")) == "[]"


def test_schema_file_from_env_else_the_one_in_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    packaged = (
        ROOT / "packages" / "prediction_log" / "prediction_log" / "prediction_log.schema.json"
    )
    monkeypatch.delenv(log_schema.SCHEMA_ENV, raising=False)
    assert log_schema.find_schema_file() == packaged
    custom = tmp_path / "schema.json"
    custom.write_text('[{"name": "request_id", "type": "STRING", "mode": "REQUIRED"}]')
    monkeypatch.setenv(log_schema.SCHEMA_ENV, str(custom))
    assert log_schema.find_schema_file() == custom
    assert [c.name for c in log_schema.load_columns()] == ["request_id"]
