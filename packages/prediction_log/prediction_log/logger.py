"""Prediction logger: every predicted instance becomes one row of the prediction log
(prediction_log.schema.json, beside this module).

    from prediction_log.logger import get_logger
    get_logger().log(rows)        # never raises; never waits on a remote backend

Every row is cleaned first (prediction_log.rows: contract columns only, no NaN or infinity; a
row that cannot be stored goes to the dead letter's rejected-* files with its reason). Then:

- stdout (the production sink) and duckdb:// (the local one): the rows are written as JSON lines
  by the calling thread, before the response leaves, to stdout or to a spool file beside the
  DuckDB file that its readers load (prediction_log.line_spool). Nothing is held in memory, so
  nothing waits for CPU after the response.
- bq://: rows are buffered and written by one background thread when the buffer
  holds `batch_rows` rows or its oldest row is `max_age_s` old, and on SIGTERM / interpreter
  exit. The buffer is bounded (`buffer_rows` rows and `buffer_bytes` bytes): rows that do not
  fit are written to the dead letter by the calling thread at once and counted as `overflow`,
  so a slow backend costs those requests a dead-letter write instead of the process its memory.

A failed write is retried with exponential backoff, only for the rows that failed; after a write
that raised, through the sink's write_missing (which skips rows already there). An insert that
was sent and never answered is not retried: it may still land after any lookup, so its rows are
spilled at once as unanswered-* files, which replay looks up only once they are old. Rows that
still fail are spilled to the dead letter (DEAD_LETTER_URI), from which
`python -m monitoring replay` loads them without duplicates (the key is the server's row_id).
If even the dead letter cannot be written, the rows go to stderr as
`PREDICTION_LOG_DEAD_ROW {json}` lines (Cloud Logging keeps them) and
`python -m monitoring replay-dead-rows` loads them from an export of those lines.

Settings: prediction_log.settings (environment, or what the function passes to get_logger()).
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from prediction_log.dead_letter import DEAD_ROW_MARKER, SPILL_MARKER, UNANSWERED, DeadLetter
from prediction_log.line_spool import LineSpoolSink
from prediction_log.rows import prepare_row
from prediction_log.schema import load_columns
from prediction_log.settings import LogSettings
from prediction_log.sinks import NoneSink, Row, Sink, UnusableSink, make_sink

SHUTDOWN_TIMEOUT_S = 5.0  # Cloud Run allows 10 s between SIGTERM and SIGKILL
# How long one batch may be retried before it goes to the dead letter. With the sink's own call
# deadlines (bigquery_sink.BQ_CALL_TIMEOUT_S and friends) this bounds how long rows wait in
# memory while the backend is slow: WRITE_DEADLINE_S plus the one call in progress when it passes.
WRITE_DEADLINE_S = 20.0
_OVERFLOW_WARNING_EVERY_S = 10.0

_log = logging.getLogger("prediction_log")


def spill_line(n_rows: int, where: str, kind: str, reason: str) -> str:
    """The line logged for each dead-letter file: SPILL_MARKER first, then what and why."""
    return f"{SPILL_MARKER} {n_rows} rows to {where} (kind={kind}; {reason})"


def row_bytes(row: Row) -> int:
    """About the row's size as JSON: its strings plus 8 bytes for any other value. Cheap (no
    serialisation on the request path) and dominated by the text when LOG_TEXT is on."""
    return sum(len(v) if isinstance(v, str) else 8 for v in row.values())


class PredictionLogger:
    def __init__(
        self,
        sink: Sink,
        dead_letter: DeadLetter,
        *,
        log_text: bool = False,
        batch_rows: int = 500,
        max_age_s: float = 1.0,
        buffer_rows: int = 10_000,
        buffer_bytes: int = 8 * 1024 * 1024,
        max_attempts: int = 4,
        backoff_s: float = 0.2,
        write_deadline_s: float = WRITE_DEADLINE_S,
    ) -> None:
        self.sink = sink
        self.dead_letter = dead_letter
        self.log_text = log_text
        self.batch_rows = batch_rows
        self.max_age_s = max_age_s
        self.buffer_rows = buffer_rows
        self.buffer_bytes = buffer_bytes
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.write_deadline_s = write_deadline_s
        self.pid = os.getpid()
        # logged: handed to log(); written: in the sink; spilled: in the dead letter (overflow
        # and rejected included); overflow: spilled because the buffer was full; rejected: refused
        # as not storable; stderr: printed as dead-row lines because the dead letter failed too.
        self.counts = dict.fromkeys(
            ("logged", "written", "spilled", "overflow", "rejected", "stderr"), 0
        )
        self._columns = None if isinstance(sink, NoneSink) else load_columns()
        self._synchronous = bool(getattr(sink, "synchronous", False))
        # Bytes of the rows in the buffer and of the batch being written: the bounds cover both,
        # since a batch stuck in retries holds its memory as long as the buffer does.
        self._buffered_bytes = 0
        self._in_flight_bytes = 0
        self._last_overflow_warning = 0.0
        # RLock: the SIGTERM handler runs on the main thread, possibly while that same thread is
        # inside log() holding the lock; a plain Lock would deadlock there.
        self._lock = threading.RLock()
        self._done = threading.Condition(self._lock)
        self._buffer: list[Row] = []
        self._oldest: float | None = None
        self._in_flight = 0
        self._in_flight_rows: list[Row] = []
        self._force = False
        self._closing = False
        self._closing_event = threading.Event()  # cuts a backoff sleep short at shutdown
        self._closed = False
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    # -- request path -------------------------------------------------------------------------

    def _prepare(self, rows: list[dict[str, Any]]) -> list[Row]:
        """Contract rows; the ones that cannot be stored go to the dead letter with the reason."""
        good: list[Row] = []
        bad: list[Row] = []
        reasons: list[str] = []
        for row in rows:
            prepared = prepare_row(row, self._columns or [], keep_text=self.log_text)
            if prepared.problem is None:
                good.append(prepared.row)
            else:
                bad.append(prepared.row)
                reasons.append(prepared.problem)
        if bad:
            self._count("rejected", len(bad))
            self._spill(bad, "not storable", kind="rejected", reasons=reasons)
        return good

    def log(self, rows: list[dict[str, Any]]) -> None:
        """Hand rows over. Never raises. Waits only for a local write: a stdout line, or a
        dead-letter file when the buffer is full; never for a remote backend."""
        if self._columns is None or not rows:
            return
        try:
            self._count("logged", len(rows))
            prepared = self._prepare(rows)
            if not prepared:
                return
            if self._synchronous:
                self._write_now(prepared)
                return
            self._enqueue(prepared)
        except Exception:  # a prediction never fails because logging failed
            _log.exception("prediction log: could not queue %d rows", len(rows))

    def _write_now(self, rows: list[Row]) -> None:
        try:
            self.sink.write(rows)
        except Exception as exc:
            self._spill(rows, f"{type(exc).__name__}: {exc}")
            return
        self._count("written", len(rows))

    def _enqueue(self, rows: list[Row]) -> None:
        overflow: list[Row] = []
        late: list[Row] = []
        full = False
        with self._lock:
            if self._closed:
                late = rows  # after close() there is no writer thread left
            else:
                for row in rows:
                    size = row_bytes(row)
                    fits = (
                        len(self._buffer) + self._in_flight < self.buffer_rows
                        and self._buffered_bytes + self._in_flight_bytes + size <= self.buffer_bytes
                    )
                    if fits:
                        self._buffer.append(row)
                        self._buffered_bytes += size
                    else:
                        overflow.append(row)
                if self._buffer:
                    if self._oldest is None:
                        self._oldest = time.monotonic()
                    self._ensure_thread()
                full = len(self._buffer) >= self.batch_rows or bool(overflow)
        if late:
            self._spill(late, "logged after close")
        if overflow:
            self._count("overflow", len(overflow))
            self._warn_overflow(len(overflow))
            self._spill(overflow, "buffer full")
        if full:
            self._wake.set()

    def _warn_overflow(self, n: int) -> None:
        now = time.monotonic()
        if now - self._last_overflow_warning >= _OVERFLOW_WARNING_EVERY_S:
            self._last_overflow_warning = now
            _log.warning(
                "prediction log: buffer full (%d rows / %d bytes at most); %d rows went to the "
                "dead letter from the request thread (%d so far)",
                self.buffer_rows, self.buffer_bytes, n, self.counts["overflow"],
            )  # fmt: skip

    def _count(self, name: str, n: int) -> None:
        with self._lock:
            self.counts[name] += n

    # -- writer thread ------------------------------------------------------------------------

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
            self._thread.start()

    def _due(self) -> bool:
        if not self._buffer:
            return False
        if self._force or self._closing or len(self._buffer) >= self.batch_rows:
            return True
        return self._oldest is not None and time.monotonic() - self._oldest >= self.max_age_s

    def _run(self) -> None:
        # The backend's client is made now, off the request path, and not at the first flush:
        # made at interpreter exit, the BigQuery client's imports fail ("can't register atexit
        # after shutdown") and the exit flush would only reach the dead letter.
        prepare = getattr(self.sink, "prepare", None)
        if prepare is not None:
            try:
                prepare()
            except Exception:  # the first write reports it, with retries and dead letter
                _log.exception("prediction log: could not prepare the sink")
        while True:
            self._wake.wait(timeout=self.max_age_s / 2)
            self._wake.clear()
            with self._lock:
                batch: list[Row] = []
                if self._due():
                    batch, self._buffer, self._oldest = self._buffer, [], None
                    self._in_flight_bytes, self._buffered_bytes = self._buffered_bytes, 0
                    self._in_flight = len(batch)
                    self._in_flight_rows = batch
                elif not self._buffer:
                    self._force = False
                    self._done.notify_all()
                    if self._closing:
                        return
            if not batch:
                self._release_idle()
            else:
                try:
                    self._write(batch)
                except Exception:  # keep the thread alive whatever a sink does
                    _log.exception("prediction log: writer failed")
                    self._spill(batch, "writer error")
                with self._lock:
                    self._in_flight = self._in_flight_bytes = 0
                    self._in_flight_rows = []
                    self._done.notify_all()
                self._wake.set()  # look again at once: more rows may have arrived meanwhile

    def _release_idle(self) -> None:
        """Let a sink that holds a resource between writes (DuckDB's file lock) let it go."""
        release = getattr(self.sink, "release_idle", None)
        if release is not None:
            try:
                release()
            except Exception:
                _log.exception("prediction log: could not release the sink")

    def _write(self, rows: list[Row]) -> None:
        pending = rows
        reason = ""
        # A write that raised may have landed all the same (a timeout after the backend took the
        # rows, a connection lost before the answer): from then on the rows are written through
        # write_missing, which skips those already in the table, so a retry adds no duplicate.
        maybe_written = False
        deadline = time.monotonic() + self.write_deadline_s
        for attempt in range(self.max_attempts):
            retry: list[Row] = []
            write = self.sink.write_missing if maybe_written else self.sink.write
            for start in range(0, len(pending), self.batch_rows):
                chunk = pending[start : start + self.batch_rows]
                if attempt > 0 and time.monotonic() >= deadline:
                    reason = reason or "write deadline passed"
                    retry += chunk  # out of time: to the dead letter with the rest
                    continue
                try:
                    result = write(chunk)
                except Exception as exc:
                    reason = f"{type(exc).__name__}: {exc}"
                    if self._outcome_unknown(exc):
                        # Sent and never answered: the request may still land, after any lookup
                        # a retry could make. Replay loads the file once it is old enough.
                        self._spill(chunk, f"no answer: {reason}", kind=UNANSWERED)
                        continue
                    retry += chunk
                    maybe_written = True
                    continue
                if result.rejected:
                    # Rows the backend will never take: kept aside with the reason, not retried,
                    # not replayed, so they cannot hold their neighbours back.
                    self._count("rejected", len(result.rejected))
                    self._spill(
                        result.rejected, "rejected", kind="rejected", reasons=result.reasons
                    )
                retry += result.retryable  # only the rows that failed are tried again
                self._count("written", len(chunk) - len(result.rejected) - len(result.retryable))
            pending = retry
            if not pending:
                return
            if self._closing or attempt + 1 == self.max_attempts:
                break  # shutting down: spill now rather than spend the grace period retrying
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._closing_event.wait(min(self.backoff_s * 2**attempt, left))
        _log.warning("prediction log: %d rows not written (%s)", len(pending), reason[:300])
        self._spill(pending, reason)

    def _outcome_unknown(self, exc: Exception) -> bool:
        judge = getattr(self.sink, "outcome_unknown", None)
        return bool(judge is not None and judge(exc))

    def _spill(
        self,
        rows: list[Row],
        reason: str,
        kind: str = "predictions",
        reasons: list[str] | None = None,
    ) -> None:
        try:
            where = self.dead_letter.write(rows, kind=kind, reasons=reasons)
            self._count("spilled", len(rows))
            # One line per file, whatever the cause (overflow included): the dead-letter alert
            # counts these lines by their first word (terraform/alerts.tf), so it stays put.
            _log.warning(spill_line(len(rows), where, kind, reason))
        except Exception:
            # Last resort: Cloud Logging keeps stderr; `python -m monitoring replay-dead-rows`
            # loads these lines from an export of the log.
            self._count("stderr", len(rows))
            text = "".join(DEAD_ROW_MARKER + json.dumps(r, default=str) + "\n" for r in rows)
            sys.stderr.write(text)
            sys.stderr.flush()

    # -- control ------------------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> None:
        """Write everything queued so far; returns when done or after timeout seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            if not self._buffer and not self._in_flight:
                return
            self._force = True
            self._ensure_thread()
            self._wake.set()
            while self._buffer or self._in_flight:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                self._done.wait(timeout=left if left is not None else 1.0)
                self._wake.set()

    def close(self, timeout: float | None = SHUTDOWN_TIMEOUT_S) -> None:
        """Flush and stop the writer thread; rows it could not finish go to the dead letter."""
        if self.pid != os.getpid():
            return  # a copy inherited through fork: the parent writes those rows
        with self._lock:
            if self._closed:
                return
            self._closing = True
        self._closing_event.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        with self._lock:
            leftover, self._buffer = self._buffer, []
            self._buffered_bytes = 0
            if thread is not None and thread.is_alive():
                # The writer is still busy (a slow or unreachable backend) and the process is
                # about to go: keep its batch too. Should the writer finish after all, replay
                # skips the rows already present, so this is at-least-once, never a loss.
                leftover = self._in_flight_rows + leftover
            self._closed = True
        if leftover:
            self._spill(leftover, "not written before shutdown")
        self.sink.close()


# -- process-wide singleton ---------------------------------------------------------------------

_instance: PredictionLogger | None = None
_instance_lock = threading.Lock()
_previous_sigterm: Any = None
_sigterm_installed = False


def build_logger(settings: LogSettings) -> PredictionLogger:
    dead_letter = DeadLetter(settings.dead_letter_uri)
    try:
        sink = _serving_sink(settings.sink_uri)
    except Exception:
        # A misconfigured sink must not take predictions down: everything goes to the dead
        # letter, and the error is in the log once.
        _log.exception(
            "prediction log: bad PREDICTION_LOG %r; rows go to the dead letter", settings.sink_uri
        )
        return PredictionLogger(UnusableSink(settings.sink_uri), dead_letter, max_attempts=1)
    return PredictionLogger(
        sink,
        dead_letter,
        log_text=settings.log_text,
        batch_rows=settings.batch_rows,
        max_age_s=settings.max_age_s,
        buffer_rows=settings.buffer_rows,
        buffer_bytes=settings.buffer_bytes,
    )


def _serving_sink(uri: str) -> Sink:
    """The writer for a serving process. For duckdb:// it is the line spool beside the file
    (prediction_log.line_spool), not DuckDB itself: no DuckDB import, nothing held in memory."""
    if uri.strip().startswith("duckdb://"):
        return LineSpoolSink(uri.strip())
    return make_sink(uri)


def _from_env() -> PredictionLogger:
    return build_logger(LogSettings.from_env(strict=False))


def get_logger(settings: LogSettings | None = None) -> PredictionLogger:
    """The process's logger, made on first use (after any fork) from `settings`, else from the
    environment. Later calls return the same logger whatever they pass."""
    global _instance
    inst = _instance
    if inst is not None and inst.pid == os.getpid():
        return inst
    with _instance_lock:
        if _instance is None or _instance.pid != os.getpid():
            # A logger inherited through fork has no writer thread: start a fresh one.
            _instance = build_logger(settings) if settings else _from_env()
            atexit.register(_instance.close)
            install_sigterm_handler()
        return _instance


def _on_sigterm(signum: int, frame: Any) -> None:
    inst = _instance
    if inst is not None and inst.pid == os.getpid():
        try:
            inst.close()
        except Exception:
            _log.exception("prediction log: flush on SIGTERM failed")
    previous = _previous_sigterm
    if callable(previous):
        previous(signum, frame)
    elif previous != signal.SIG_IGN:
        # Default action: terminate, as if we had never been here.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)


def install_sigterm_handler() -> bool:
    """Flush on SIGTERM, then hand the signal to whatever handler was there before (the server's
    own, or the default exit). Only the main thread may set handlers; elsewhere this returns
    False. The function calls it when main.py is imported, on the main thread.

    A server that sets its own SIGTERM handler after that (gunicorn's arbiter, and each worker
    after the fork) replaces this one; its workers then stop through sys.exit, and the atexit
    hook flushes instead."""
    global _previous_sigterm, _sigterm_installed
    if threading.current_thread() is not threading.main_thread():
        return False
    current: Callable[..., Any] | int | None = signal.getsignal(signal.SIGTERM)
    if current is _on_sigterm:
        return True
    _previous_sigterm = current
    signal.signal(signal.SIGTERM, _on_sigterm)
    _sigterm_installed = True
    return True


def sigterm_handler_installed() -> bool:
    return signal.getsignal(signal.SIGTERM) is _on_sigterm
