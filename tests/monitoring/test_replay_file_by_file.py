"""Replay takes the dead letter file by file: a file that cannot be read is set aside
(rejected-unreadable-*) and the files after it still load; a large file goes in bounded
batches; two replays over the same files at once both finish, and each row is in the log once."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, ClassVar

import duckdb

from monitoring.replay import REPLAY_BATCH_ROWS, replay
from prediction_log.dead_letter import DeadLetter
from prediction_log.sinks import DuckDBSink, WriteResult
from tests.monitoring._crafted import make_rows


def _count(db: Path) -> tuple[int, int]:
    con = duckdb.connect(str(db))
    try:
        total, distinct = con.execute(
            "SELECT COUNT(*), COUNT(DISTINCT row_id) FROM predictions"
        ).fetchone()
        return int(total), int(distinct)
    finally:
        con.close()


def test_an_unreadable_file_is_set_aside_and_the_others_load(tmp_path: Path) -> None:
    dead = tmp_path / "dead"
    letter = DeadLetter(str(dead))
    first = letter.write(make_rows(5, seed=41))
    # Sorted between the two good files, so it would stop the second one if it stopped replay.
    poison = dead / (Path(first).name.replace(".jsonl", "a.jsonl"))
    poison.write_bytes(b'{"request_id": "r1"}\n\xff\xfe not utf-8 \n')
    not_rows = dead / (Path(first).name.replace(".jsonl", "b.jsonl"))
    not_rows.write_text("[1, 2]\n")
    letter.write(make_rows(7, seed=42))
    log = tmp_path / "log.duckdb"

    result = replay(f"duckdb://{log}", str(dead))

    assert result.files == 4 and result.failed_files == 2
    assert result.inserted == 12
    assert _count(log) == (12, 12)
    assert letter.pending_names() == []
    aside = sorted(p.name for p in dead.glob("rejected-unreadable-*"))
    assert aside == sorted(f"rejected-unreadable-{p.name}" for p in (poison, not_rows))
    assert replay(f"duckdb://{log}", str(dead)).files == 0  # not picked up again


class _CountingSink(DuckDBSink):
    def __init__(self, uri: str) -> None:
        super().__init__(uri)
        self.batches: list[int] = []

    def write_missing(self, rows: list[dict[str, Any]]) -> WriteResult:
        self.batches.append(len(rows))
        return super().write_missing(rows)


def test_a_large_file_loads_in_bounded_batches(tmp_path: Path, monkeypatch: Any) -> None:
    import monitoring.replay as replay_module

    dead = tmp_path / "dead"
    DeadLetter(str(dead)).write(make_rows(REPLAY_BATCH_ROWS * 2 + 37, seed=43))
    sinks: list[_CountingSink] = []

    def make(uri: str) -> _CountingSink:
        sinks.append(_CountingSink(uri))
        return sinks[-1]

    monkeypatch.setattr(replay_module, "make_sink", make)
    log = tmp_path / "log.duckdb"
    result = replay(f"duckdb://{log}", str(dead))
    assert result.inserted == REPLAY_BATCH_ROWS * 2 + 37
    assert sinks[0].batches == [REPLAY_BATCH_ROWS, REPLAY_BATCH_ROWS, 37]


def test_small_files_load_together(tmp_path: Path, monkeypatch: Any) -> None:
    """An overflow writes a file per request: one lookup per file would be one BigQuery query
    (about a second) per few rows."""
    import monitoring.replay as replay_module

    dead = tmp_path / "dead"
    for seed in range(30):
        DeadLetter(str(dead)).write(make_rows(3, seed=100 + seed))
    sinks: list[_CountingSink] = []

    def make(uri: str) -> _CountingSink:
        sinks.append(_CountingSink(uri))
        return sinks[-1]

    monkeypatch.setattr(replay_module, "make_sink", make)
    log = tmp_path / "log.duckdb"
    result = replay(f"duckdb://{log}", str(dead))
    assert (result.files, result.rows, result.inserted) == (30, 90, 90)
    assert sinks[0].batches == [90]
    assert len(list((dead / "replayed").glob("*.jsonl"))) == 30
    assert _count(log) == (90, 90)


class _AppendingTable:
    """A BigQuery-like table: write_missing looks the keys up, then appends; nothing refuses a
    second copy (BigQuery drops repeated insert ids only on a best-effort basis). The pause
    between lookup and append is where two replays of one file would both insert."""

    rows: ClassVar[list[dict[str, Any]]] = []
    lock = threading.Lock()
    uri = "appending://"

    def __init__(self, uri: str) -> None:
        pass

    def write_missing(self, rows: list[dict[str, Any]]) -> WriteResult:
        with self.lock:
            present = {r["row_id"] for r in self.rows}
        missing = [r for r in rows if r["row_id"] not in present]
        time.sleep(0.3)
        with self.lock:
            self.rows.extend(missing)
        return WriteResult(inserted=len(missing))

    def close(self) -> None:
        pass


def test_two_replays_at_once_load_each_file_once(tmp_path: Path, monkeypatch: Any) -> None:
    import monitoring.replay as replay_module

    dead = tmp_path / "dead"
    for seed in (44, 45, 46):
        DeadLetter(str(dead)).write(make_rows(10, seed=seed))
    _AppendingTable.rows = []
    monkeypatch.setattr(replay_module, "make_sink", _AppendingTable)
    results: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(replay("appending://", str(dead)))
        except BaseException as exc:  # the assertion below reports it
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == [] and len(results) == 2
    assert sum(r.files for r in results) == 3  # each file loaded by one replay only
    ids = [r["row_id"] for r in _AppendingTable.rows]
    assert len(ids) == 30 and len(set(ids)) == 30
    assert DeadLetter(str(dead)).pending_names() == []
    assert len(list((dead / "replayed").glob("*.jsonl"))) == 3
    assert list((dead / "claimed").glob("*")) == []


def test_a_failed_load_and_a_killed_replays_claim_go_back_to_pending(tmp_path: Path) -> None:
    dead = tmp_path / "dead"
    letter = DeadLetter(str(dead))
    name = letter.write(make_rows(4, seed=47))
    log = tmp_path / "log.duckdb"
    log.mkdir()  # not a file DuckDB can open: the load fails
    result = replay(f"duckdb://{log}", str(dead))
    assert result.failed_files == 1
    assert letter.pending_names() == [name]

    claimed = letter.claim(name)  # a replay that claims the file and is then killed
    assert claimed is not None and letter.pending_names() == []
    assert letter.claim(name) is None  # nobody else takes it meanwhile
    assert letter.release_stale_claims(older_than_s=3600) == 0
    assert letter.release_stale_claims(older_than_s=0) == 1
    assert letter.pending_names() == [name]
