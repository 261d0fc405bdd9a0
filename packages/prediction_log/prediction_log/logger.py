"""Prediction logger: every predicted instance becomes one row of the prediction log
(sql/prediction_log.schema.json), written off the request path.

    from prediction_log.logger import get_logger
    get_logger().log(rows)        # never raises, never blocks on I/O

Rows are buffered in the process and written by one background thread when the buffer holds
LOG_BATCH_ROWS rows or its oldest row is LOG_MAX_AGE_S old, and on SIGTERM / interpreter exit.
A failed write is retried with exponential backoff; rows that still fail (or that the backend
rejects as invalid) are spilled to the dead letter (DEAD_LETTER_URI), from which
`python -m monitoring replay` loads them without duplicates. If even the dead letter cannot be
written, the rows go to stderr as JSON lines (Cloud Logging keeps them), so nothing vanishes.

Environment: PREDICTION_LOG (sink URI, see prediction_log.sinks), LOG_TEXT (keep the text
column; off by default), DEAD_LETTER_URI (folder or gs:// prefix), PREDICTION_LOG_SCHEMA (schema
file path), PREDICTION_LOG_BATCH_ROWS (500) and PREDICTION_LOG_MAX_AGE_S (1.0): flush triggers.
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

from prediction_log.dead_letter import DeadLetter
from prediction_log.schema import iso_utc, load_columns
from prediction_log.sinks import NoneSink, Row, Sink, make_sink

DEFAULT_PREDICTION_LOG = "duckdb://local/predictions.duckdb"
DEFAULT_DEAD_LETTER_URI = "local/dead_letter"
SHUTDOWN_TIMEOUT_S = 5.0  # Cloud Run allows 10 s between SIGTERM and SIGKILL

_log = logging.getLogger("prediction_log")


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    try:
        value = float(raw) if raw else default
        if value > 0:
            return value
    except ValueError:
        pass
    _log.error("prediction log: %s=%r is not a positive number; using %s", name, raw, default)
    return default


class PredictionLogger:
    def __init__(
        self,
        sink: Sink,
        dead_letter: DeadLetter,
        *,
        log_text: bool = False,
        batch_rows: int = 500,
        max_age_s: float = 1.0,
        max_attempts: int = 4,
        backoff_s: float = 0.2,
    ) -> None:
        self.sink = sink
        self.dead_letter = dead_letter
        self.log_text = log_text
        self.batch_rows = batch_rows
        self.max_age_s = max_age_s
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.pid = os.getpid()
        self.counts = {"logged": 0, "written": 0, "spilled": 0, "rejected": 0, "stderr": 0}
        self._columns = None if isinstance(sink, NoneSink) else [c.name for c in load_columns()]
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

    def _prepare(self, row: Row) -> Row:
        out = {k: row.get(k) for k in self._columns or ()}
        out["ts"] = iso_utc(out.get("ts"))
        if not self.log_text:
            out["text"] = None
        return out

    def log(self, rows: list[dict[str, Any]]) -> None:
        """Queue rows for writing. Never raises and never waits for I/O."""
        if self._columns is None or not rows:
            return
        try:
            prepared = [self._prepare(r) for r in rows]
            full = False
            with self._lock:
                if self._closed:
                    late = prepared
                else:
                    late = []
                    self._buffer.extend(prepared)
                    self.counts["logged"] += len(prepared)
                    if self._oldest is None:
                        self._oldest = time.monotonic()
                    self._ensure_thread()
                    full = len(self._buffer) >= self.batch_rows
            if late:  # after close() there is no writer thread left: keep them in the dead letter
                self._spill(late, "logged after close")
            elif full:
                self._wake.set()
        except Exception:  # a prediction never fails because logging failed
            _log.exception("prediction log: could not queue %d rows", len(rows))

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
        while True:
            self._wake.wait(timeout=self.max_age_s / 2)
            self._wake.clear()
            with self._lock:
                batch: list[Row] = []
                if self._due():
                    batch, self._buffer, self._oldest = self._buffer, [], None
                    self._in_flight = len(batch)
                    self._in_flight_rows = batch
                elif not self._buffer:
                    self._force = False
                    self._done.notify_all()
                    if self._closing:
                        return
            if batch:
                try:
                    self._write(batch)
                except Exception:  # keep the thread alive whatever a sink does
                    _log.exception("prediction log: writer failed")
                    self._spill(batch, "writer error")
                with self._lock:
                    self._in_flight = 0
                    self._in_flight_rows = []
                    self._done.notify_all()
                self._wake.set()  # look again at once: more rows may have arrived meanwhile

    def _write(self, rows: list[Row]) -> None:
        pending = rows
        reason = ""
        for attempt in range(self.max_attempts):
            retry: list[Row] = []
            for start in range(0, len(pending), self.batch_rows):
                chunk = pending[start : start + self.batch_rows]
                try:
                    result = self.sink.write(chunk)
                except Exception as exc:
                    reason = f"{type(exc).__name__}: {exc}"
                    retry += chunk
                    continue
                if result.rejected:
                    self.counts["rejected"] += len(result.rejected)
                    self._spill(result.rejected, f"rejected: {result.reasons[:1]}")
                retry += result.retryable
                self.counts["written"] += len(chunk) - len(result.rejected) - len(result.retryable)
            pending = retry
            if not pending:
                return
            if self._closing or attempt + 1 == self.max_attempts:
                break  # shutting down: spill now rather than spend the grace period retrying
            self._closing_event.wait(self.backoff_s * 2**attempt)
        _log.warning("prediction log: %d rows not written (%s)", len(pending), reason[:300])
        self._spill(pending, reason)

    def _spill(self, rows: list[Row], reason: str) -> None:
        try:
            where = self.dead_letter.write(rows)
            self.counts["spilled"] += len(rows)
            _log.warning("prediction log: %d rows spilled to %s (%s)", len(rows), where, reason)
        except Exception:
            # Last resort: Cloud Logging keeps stderr, and replay can be fed from it by hand.
            self.counts["stderr"] += len(rows)
            for row in rows:
                print("PREDICTION_LOG_DEAD_ROW " + json.dumps(row, default=str), file=sys.stderr)

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


def _from_env() -> PredictionLogger:
    sink_uri = os.environ.get("PREDICTION_LOG", DEFAULT_PREDICTION_LOG)
    dead_letter = DeadLetter(os.environ.get("DEAD_LETTER_URI", DEFAULT_DEAD_LETTER_URI))
    try:
        sink = make_sink(sink_uri)
    except Exception:
        # A misconfigured sink must not take predictions down: everything goes to the dead
        # letter, and the error is in the log once.
        _log.exception(
            "prediction log: bad PREDICTION_LOG %r; rows go to the dead letter", sink_uri
        )
        return PredictionLogger(_FailingSink(sink_uri), dead_letter, max_attempts=1)
    return PredictionLogger(
        sink,
        dead_letter,
        log_text=_env_flag("LOG_TEXT"),
        batch_rows=int(_env_number("PREDICTION_LOG_BATCH_ROWS", 500)),
        max_age_s=_env_number("PREDICTION_LOG_MAX_AGE_S", 1.0),
    )


class _FailingSink:
    def __init__(self, uri: str) -> None:
        self.uri = uri

    def write(self, rows: list[Row]) -> Any:
        raise RuntimeError(f"unusable PREDICTION_LOG {self.uri!r}")

    def write_missing(self, rows: list[Row]) -> Any:
        raise RuntimeError(f"unusable PREDICTION_LOG {self.uri!r}")

    def close(self) -> None:
        pass


def get_logger() -> PredictionLogger:
    """The process's logger, made on first use (after any fork) from the environment."""
    global _instance
    inst = _instance
    if inst is not None and inst.pid == os.getpid():
        return inst
    with _instance_lock:
        if _instance is None or _instance.pid != os.getpid():
            # A logger inherited through fork has no writer thread: start a fresh one.
            _instance = _from_env()
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
    own, or the default exit). Only the main thread may set handlers; elsewhere this is a no-op
    and the atexit hook covers a normal shutdown (gunicorn workers exit through sys.exit)."""
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


# Installed at import, which happens on the main thread, because get_logger() is usually first
# called from a request thread where signal handlers cannot be set.
install_sigterm_handler()
