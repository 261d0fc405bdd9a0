"""The local log as the function writes it: a JSON line per row beside the DuckDB file, written
before log() returns, loaded into the table by whoever opens it (prediction_log.line_spool)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from monitoring._engines import DuckDBEngine
from monitoring.replay import replay
from prediction_log.dead_letter import DeadLetter
from prediction_log.line_spool import LineSpoolSink, connect_and_load, spool_folder
from prediction_log.logger import build_logger
from prediction_log.settings import LogSettings
from testing.paths import ROOT
from tests.monitoring._crafted import make_rows


def _table_ids(database: Path) -> list[str]:
    with connect_and_load(database, lock_wait_s=10) as con:
        return [r[0] for r in con.execute("SELECT row_id FROM predictions").fetchall()]


def _logger(tmp_path: Path, database: Path):
    return build_logger(
        LogSettings(sink_uri=f"duckdb://{database}", dead_letter_uri=str(tmp_path / "dead"))
    )


def test_rows_are_on_disk_when_log_returns_and_load_once(tmp_path: Path) -> None:
    database = tmp_path / "log.duckdb"
    logger = _logger(tmp_path, database)
    assert isinstance(logger.sink, LineSpoolSink)
    rows = make_rows(30)
    logger.log(rows)
    [spool] = spool_folder(database).glob("spool-*.jsonl")
    assert len(spool.read_text().splitlines()) == 30  # no flush, no thread: written already
    assert not database.exists()

    # The writer is still open: its lines are loaded, the file stays, the offset says how far.
    assert sorted(_table_ids(database)) == sorted(r["row_id"] for r in rows)
    assert spool.exists() and int(spool.with_suffix(".offset").read_text()) == spool.stat().st_size
    more = make_rows(5, seed=1)
    logger.log(more)
    logger.close()
    ids = _table_ids(database)  # the rest, and the finished file is gone
    assert len(ids) == len(set(ids)) == 35
    assert not list(spool_folder(database).glob("spool-*"))
    assert _table_ids(database) == ids  # loading again adds nothing
    assert logger.counts["written"] == 35 and not list(DeadLetter(str(tmp_path / "dead")).pending())


def test_the_serving_process_never_imports_duckdb(tmp_path: Path) -> None:
    code = f"""
        import sys
        from prediction_log.logger import build_logger
        from prediction_log.settings import LogSettings
        from tests.monitoring._crafted import make_rows
        logger = build_logger(LogSettings(sink_uri="duckdb://{tmp_path / "log.duckdb"}"))
        logger.log(make_rows(3))
        logger.close()
        print("duckdb" in sys.modules, logger.counts["written"])
    """
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.split() == ["False", "3"], out.stderr


def test_rows_answered_before_a_sigkill_are_all_loaded(tmp_path: Path) -> None:
    """An out-of-memory kill gives no warning: what log() returned from must still be there."""
    database = tmp_path / "log.duckdb"
    code = f"""
        import json, time
        from prediction_log.logger import build_logger
        from prediction_log.settings import LogSettings
        from tests.monitoring._crafted import make_rows
        logger = build_logger(LogSettings(sink_uri="duckdb://{database}"))
        for k in range(20):
            rows = make_rows(4, seed=k)
            logger.log(rows)
            print(json.dumps([r["row_id"] for r in rows]), flush=True)  # "answered"
        time.sleep(60)
    """
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    answered = [i for _ in range(20) for i in json.loads(proc.stdout.readline())]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert sorted(_table_ids(database)) == sorted(answered)
    assert not list(spool_folder(database).glob("spool-*"))  # the dead writer's file is done


def test_concurrent_requests_never_interleave_their_lines(tmp_path: Path) -> None:
    database = tmp_path / "log.duckdb"
    logger = _logger(tmp_path, database)
    batches = [make_rows(25, seed=k) for k in range(16)]
    threads = [threading.Thread(target=logger.log, args=(b,)) for b in batches]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    logger.close()
    assert len(set(_table_ids(database))) == 400
    assert not list(spool_folder(database).glob("rejected-*"))


def test_a_half_line_and_a_bad_value_are_set_aside_and_the_rest_loads(tmp_path: Path) -> None:
    database = tmp_path / "log.duckdb"
    sink = LineSpoolSink(f"duckdb://{database}")
    good, bad = make_rows(3), make_rows(1, seed=1)[0]
    bad["latency_ms"] = "not a number"  # past the logger's checks, as a hand-edited line would be
    sink.write([*good, bad])
    sink.close()
    [spool] = spool_folder(database).glob("spool-*.jsonl")
    with spool.open("a") as f:
        f.write('{"severity": "INFO", "message": "prediction_log_ro')  # killed mid-write
    assert sorted(_table_ids(database)) == sorted(r["row_id"] for r in good)
    [rejected] = spool_folder(database).glob("rejected-*.jsonl")
    reasons = [json.loads(line)["_reason"] for line in rejected.read_text().splitlines()]
    assert len(reasons) == 2 and any("unfinished" in r for r in reasons)


def test_monitoring_reads_see_spooled_rows(tmp_path: Path) -> None:
    database = tmp_path / "log.duckdb"
    logger = _logger(tmp_path, database)
    logger.log(make_rows(7))
    engine = DuckDBEngine(database)
    assert engine.query("SELECT COUNT(*) AS n FROM predictions")[0]["n"] == 7
    logger.close()


def test_a_failed_write_spills_and_the_next_rows_start_a_new_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A disk that fills mid-write leaves half a line; the rows go to the dead letter, and the
    next request's lines are not glued to that half line."""
    import prediction_log.line_spool as line_spool

    database = tmp_path / "log.duckdb"
    logger = _logger(tmp_path, database)
    logger.log(make_rows(2))
    real_write = os.write

    def half_then_full(fd: int, data: memoryview) -> int:
        real_write(fd, data[: len(data) // 2])
        monkeypatch.setattr(line_spool.os, "write", real_write)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(line_spool.os, "write", half_then_full)
    failed = make_rows(3, seed=1)
    logger.log(failed)
    later = make_rows(4, seed=2)
    logger.log(later)
    logger.close()
    spilled = [r["row_id"] for f in DeadLetter(str(tmp_path / "dead")).pending() for r in f.rows]
    assert sorted(spilled) == sorted(r["row_id"] for r in failed)
    assert len(list(spool_folder(database).glob("spool-*.jsonl"))) == 2
    stored = set(_table_ids(database))  # whole lines of the failed write may have landed too
    assert {r["row_id"] for r in make_rows(2) + later} <= stored
    assert list(spool_folder(database).glob("rejected-*.jsonl"))  # the half line, set aside
    replay(f"duckdb://{database}", str(tmp_path / "dead"))
    ids = _table_ids(database)
    assert len(ids) == len(set(ids)) == 9
