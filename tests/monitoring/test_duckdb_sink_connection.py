"""The DuckDB sink's connection: one connection while flushes keep coming (closing one
checkpoints the file, the dominant cost of a flush), and the file free for other processes once
writes pause or the connection has been held for its bound."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest

from prediction_log.dead_letter import DeadLetter
from prediction_log.logger import PredictionLogger
from prediction_log.sinks import DuckDBSink
from tests.monitoring._crafted import make_rows

_OPENS_FOR_WRITING = (
    "import duckdb, sys\n"
    "con = duckdb.connect(sys.argv[1])\n"
    "print(con.execute('SELECT COUNT(*) FROM predictions').fetchone()[0])\n"
)


def _count_in_another_process(db: Path) -> int | None:
    """Rows seen by another process that opens the file for writing; None while it is held."""
    done = subprocess.run(
        [sys.executable, "-c", _OPENS_FOR_WRITING, str(db)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode != 0:
        assert "lock" in done.stderr.lower(), done.stderr
        return None
    return int(done.stdout)


def _counting_connects(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    opened: list[str] = []
    real_connect = duckdb.connect

    def connect(*args: Any, **kwargs: Any) -> Any:
        opened.append(str(args[0]) if args else "")
        return real_connect(*args, **kwargs)

    monkeypatch.setattr(duckdb, "connect", connect)
    return opened


def test_consecutive_flushes_share_one_connection_and_each_counts_its_new_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened = _counting_connects(monkeypatch)
    sink = DuckDBSink(f"duckdb://{tmp_path / 'log.duckdb'}")
    rows = make_rows(30)
    try:
        assert [sink.write(rows[i : i + 10]).inserted for i in (0, 10, 20)] == [10, 10, 10]
        assert sink.write(rows[5:15]).inserted == 0  # already there: nothing added twice
    finally:
        sink.close()
    assert len(opened) == 1


def test_the_connection_is_closed_after_its_hold_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "log.duckdb"
    sink = DuckDBSink(f"duckdb://{db}")
    monkeypatch.setattr(sink, "HOLD_S", 0.0)  # every write is past the bound
    sink.write(make_rows(10))
    # Still inside the writing process, no close() called: another process can write the file.
    assert _count_in_another_process(db) == 10


def test_the_file_is_free_for_another_process_once_writes_pause(tmp_path: Path) -> None:
    db = tmp_path / "log.duckdb"
    logger = PredictionLogger(
        DuckDBSink(f"duckdb://{db}"), DeadLetter(str(tmp_path / "dead")), max_age_s=0.2
    )
    try:
        logger.log(make_rows(20))
        logger.flush(timeout=30)
        deadline = time.monotonic() + DuckDBSink.IDLE_S + 10
        seen = None
        while seen is None and time.monotonic() < deadline:
            seen = _count_in_another_process(db)
        assert seen == 20  # the logger is still running; only its connection was let go
        logger.log(make_rows(25)[20:])  # and it reopens the file for the next rows
        logger.flush(timeout=30)
    finally:
        logger.close()
    assert _count_in_another_process(db) == 25
