"""An insert that was sent and never answered may still land after the client gave up. The
logger must not retry it through a lookup of the rows already present (the lookup can run before
the held request lands, and the rows would then be written twice); it spills the rows to an
unanswered-* file, and replay loads that file only once it is old enough, so every row is in the
table once. The bq:// sink tells an unanswered request from one that was answered or never
sent, against real HTTP servers."""

from __future__ import annotations

import http.server
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from monitoring.replay import replay
from prediction_log import bigquery_sink
from prediction_log.bigquery_sink import BigQuerySink
from prediction_log.dead_letter import UNANSWERED, DeadLetter
from prediction_log.logger import PredictionLogger
from prediction_log.sinks import DuckDBSink, WriteResult
from tests.monitoring._crafted import make_rows

HOLD_S = 0.5


class _HeldTable:
    """A table without insert-id dedup (as bqemulator): every insert request times out on the
    client, and the backend lands it HOLD_S later all the same."""

    uri = "held://"
    synchronous = False

    def __init__(self) -> None:
        self.table: list[dict[str, Any]] = []
        self.lookups = 0
        self._landing: list[threading.Thread] = []

    def write(self, rows: list[dict[str, Any]]) -> WriteResult:
        def land() -> None:
            time.sleep(HOLD_S)
            self.table.extend(rows)

        thread = threading.Thread(target=land)
        thread.start()
        self._landing.append(thread)
        raise TimeoutError("read timed out")

    def write_missing(self, rows: list[dict[str, Any]]) -> WriteResult:
        self.lookups += 1
        present = {r["row_id"] for r in self.table}  # the held insert has not landed yet
        missing = [r for r in rows if r["row_id"] not in present]
        self.table.extend(missing)
        return WriteResult(inserted=len(missing))

    def outcome_unknown(self, exc: BaseException) -> bool:
        return isinstance(exc, TimeoutError)

    def landed(self) -> None:
        for thread in self._landing:
            thread.join()

    def close(self) -> None:
        pass


def test_an_unanswered_insert_is_spilled_once_and_not_looked_up(tmp_path: Path) -> None:
    sink = _HeldTable()
    dead = tmp_path / "dead"
    logger = PredictionLogger(sink, DeadLetter(str(dead)), backoff_s=0.01, max_age_s=0.05)
    rows = make_rows(40, seed=7)
    logger.log(rows)
    logger.flush(timeout=10)
    logger.close()
    sink.landed()

    assert sink.lookups == 0
    files = sorted(dead.glob("*.jsonl"))
    assert [f.name.split("-")[0] for f in files] == [UNANSWERED]
    ids = sorted(r["row_id"] for r in sink.table)
    assert len(ids) == 40 and len(set(ids)) == 40  # landed once, by the held request


def test_replay_leaves_young_unanswered_files_and_then_adds_nothing_twice(tmp_path: Path) -> None:
    dead = tmp_path / "dead"
    letter = DeadLetter(str(dead))
    rows = make_rows(12, seed=8)
    letter.write(rows[:6], kind=UNANSWERED)
    letter.write(rows[6:])  # an ordinary spill: loaded at once
    log = tmp_path / "log.duckdb"

    first = replay(f"duckdb://{log}", str(dead), min_age_s=600)
    assert (first.waiting, first.files, first.inserted) == (1, 1, 6)

    # The held insert landed meanwhile: the replay after the wait adds none of its rows again.
    held = DuckDBSink(f"duckdb://{log}")
    held.write_missing(DeadLetter(str(dead)).read(DeadLetter(str(dead)).pending_names()[0]))
    held.close()
    later = replay(f"duckdb://{log}", str(dead), min_age_s=0)
    assert (later.waiting, later.files, later.inserted) == (0, 1, 0)
    assert DeadLetter(str(dead)).pending_names() == []


class _Server:
    """A local HTTP server whose POST handler is `answer`."""

    def __init__(self, answer: Any) -> None:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                answer(self)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.host = f"127.0.0.1:{self.httpd.server_address[1]}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _insert_error(monkeypatch: pytest.MonkeyPatch, host: str) -> tuple[BaseException, bool]:
    monkeypatch.setenv("BIGQUERY_EMULATOR_HOST", host)
    monkeypatch.setattr(bigquery_sink, "BQ_CALL_TIMEOUT_S", 0.5)
    monkeypatch.setattr(bigquery_sink, "BQ_RETRY_DEADLINE_S", 0.3)
    sink = BigQuerySink("bq://p.d.predictions")
    try:
        sink.write(make_rows(3, seed=9))
    except Exception as exc:
        return exc, sink.outcome_unknown(exc)
    finally:
        sink.close()
    raise AssertionError("the insert did not fail")


def test_a_request_held_past_the_timeout_is_unanswered(monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    server = _Server(lambda handler: release.wait(5))
    try:
        exc, unknown = _insert_error(monkeypatch, server.host)
    finally:
        release.set()
        server.stop()
    assert unknown, repr(exc)


def test_an_error_status_was_answered(monkeypatch: pytest.MonkeyPatch) -> None:
    def unavailable(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(503)
        handler.send_header("Content-Type", "application/json")
        body = b'{"error": {"code": 503, "message": "down", "status": "UNAVAILABLE"}}'
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    server = _Server(unavailable)
    try:
        exc, unknown = _insert_error(monkeypatch, server.host)
    finally:
        server.stop()
    assert not unknown, repr(exc)


def test_a_refused_connection_sent_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    exc, unknown = _insert_error(monkeypatch, f"127.0.0.1:{port}")
    assert not unknown, repr(exc)
