"""A dead-letter store that does not answer costs a spilling request a bounded time: the gs://
upload has its own timeout and retry deadline (not the client's 60 s, the function's whole
timeout), and the rows then reach stderr as PREDICTION_LOG_DEAD_ROW lines."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from prediction_log import dead_letter
from prediction_log.dead_letter import DeadLetter, dead_rows_in
from prediction_log.logger import PredictionLogger
from tests.monitoring._crafted import make_rows


@pytest.fixture
def stalling_store(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An HTTP endpoint that accepts connections, reads the request and never answers."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            held.append(conn)  # kept open, never answered

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.getsockname()[1]}"
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", url)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "test")
    try:
        yield url
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in held:
            conn.close()
        server.close()


class _FailingStdout:
    """A synchronous sink whose write fails (stdout closed): the request thread spills."""

    uri = "stdout"
    synchronous = True

    def write(self, rows):
        raise OSError("stdout closed")

    def write_missing(self, rows):
        raise OSError("stdout closed")

    def close(self) -> None:
        pass


def test_defaults_stay_well_inside_the_functions_timeout() -> None:
    # The function's timeout is 60 s; a spill may cost a request about timeout + retry deadline.
    assert dead_letter.UPLOAD_TIMEOUT_S + dead_letter.UPLOAD_RETRY_DEADLINE_S <= 15


def test_a_stalled_store_bounds_the_spilling_request(
    stalling_store: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    letter = DeadLetter("gs://stalled/dead_letter", upload_timeout_s=0.5, upload_retry_deadline_s=1)
    logger = PredictionLogger(_FailingStdout(), letter)
    rows = make_rows(3, seed=5)
    done = threading.Event()
    elapsed: list[float] = []

    def request() -> None:
        start = time.perf_counter()
        logger.log(rows)
        elapsed.append(time.perf_counter() - start)
        done.set()

    threading.Thread(target=request, daemon=True).start()
    # Bounded: one attempt's timeout plus the retry deadline plus a last attempt, and slack for a
    # busy machine; the client's default would hold the request for 60 s.
    assert done.wait(timeout=8), "the spilling request is still waiting on the store"
    assert elapsed[0] < 8
    assert logger.counts["stderr"] == 3
    stderr = capsys.readouterr().err
    assert sorted(r["row_id"] for r in dead_rows_in(stderr)) == sorted(r["row_id"] for r in rows)
