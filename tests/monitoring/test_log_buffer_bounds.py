"""The background sinks' buffer is bounded in rows and in bytes. When a slow backend fills it, the
rows that do not fit go to the dead letter from the request that brought them (counted as
overflow, never dropped, never waiting for the backend), and a replay brings every row in once."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import duckdb

from monitoring.replay import replay
from prediction_log.dead_letter import DeadLetter
from prediction_log.logger import PredictionLogger, row_bytes
from prediction_log.sinks import DuckDBSink, WriteResult
from tests.monitoring._crafted import make_rows


class _StuckSink:
    """A backend that hangs until released (BigQuery slow rather than down), then writes into
    a real DuckDB file."""

    uri = "stuck://"

    def __init__(self, target: DuckDBSink) -> None:
        self.target = target
        self.release = threading.Event()

    def write(self, rows: list[dict[str, Any]]) -> WriteResult:
        self.release.wait(timeout=60)
        return self.target.write(rows)

    def write_missing(self, rows: list[dict[str, Any]]) -> WriteResult:
        return self.target.write_missing(rows)

    def close(self) -> None:
        pass


def _logger(tmp_path: Path, sink: Any, **bounds: int) -> PredictionLogger:
    return PredictionLogger(
        sink, DeadLetter(str(tmp_path / "dead")), batch_rows=10, max_age_s=0.05, **bounds
    )


def test_full_buffer_spills_from_the_request_and_replay_restores_every_row(
    tmp_path: Path,
) -> None:
    log_uri = f"duckdb://{tmp_path / 'log.duckdb'}"
    sink = _StuckSink(DuckDBSink(log_uri))
    logger = _logger(tmp_path, sink, buffer_rows=50)
    rows = make_rows(300, seed=12)
    worst = 0.0
    for start in range(0, len(rows), 2):
        t = time.perf_counter()
        logger.log(rows[start : start + 2])
        worst = max(worst, time.perf_counter() - t)
    # The writer holds one stuck batch; buffer + batch never exceed the bound.
    assert len(logger._buffer) + logger._in_flight <= 50
    assert logger.counts["overflow"] >= 250
    assert logger.counts["spilled"] == logger.counts["overflow"]
    # The stuck sink never returns while the loop runs, so a log() that waited on it would hang;
    # a spill is a file write. The bound leaves room for a busy machine.
    assert worst < 5.0, f"log() waited {worst:.2f} s with the backend stuck"

    sink.release.set()
    logger.close(timeout=30)
    spilled = sum(len(f.rows) for f in DeadLetter(str(tmp_path / "dead")).pending())
    assert logger.counts["written"] + spilled == 300

    result = replay(log_uri, str(tmp_path / "dead"))
    assert result.failed_files == 0 and result.inserted == spilled
    with duckdb.connect(str(tmp_path / "log.duckdb")) as con:
        keys = [r[0] for r in con.execute("SELECT row_id FROM predictions").fetchall()]
    assert sorted(keys) == sorted(r["row_id"] for r in rows)


def test_the_byte_bound_holds_rows_that_carry_texts(tmp_path: Path) -> None:
    sink = _StuckSink(DuckDBSink(f"duckdb://{tmp_path / 'log.duckdb'}"))
    rows = make_rows(40, seed=13)
    for row in rows:
        row["text"] = "x" * 10_000
    logger = _logger(tmp_path, sink, buffer_rows=10_000, buffer_bytes=100_000)
    logger.log_text = True
    for row in rows:
        logger.log([row])
    held = sum(row_bytes(r) for r in logger._buffer) + logger._in_flight_bytes
    assert held <= 100_000
    assert logger.counts["overflow"] >= 40 - 100_000 // 10_000
    sink.release.set()
    logger.close(timeout=30)
