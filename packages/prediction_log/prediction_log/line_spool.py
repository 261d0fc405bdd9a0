"""The local log's two halves: the function appends each row as a JSON line to a file beside the
DuckDB file, before the response leaves; readers of the DuckDB file load those lines into the
table first. It is the local counterpart of production's path, where the function writes the
same lines to stdout and a Cloud Logging sink carries them into BigQuery.

Why the function does not write DuckDB itself: importing DuckDB costs a serving process about
34 MiB (its library's relocated pages), and a background writer holds rows in memory until its
next flush, so a killed process lost them. An appended line costs microseconds, needs no import,
and survives the process (it is in the page cache once `write` returns).

    duckdb://local/predictions.duckdb   the table (monitoring, dashboards, replay read it)
    local/predictions.duckdb.lines/     spool-<host>-<pid>-<ns>.jsonl, one file per writer
                                        (a new one past ROTATE_BYTES); *.offset: bytes loaded

A writer holds a shared flock on its file while it is open. The loader takes what ends in a
newline, inserts it (INSERT OR IGNORE on row_id, so loading twice adds nothing), records the
offset, and deletes a file once no writer holds it and all of it is loaded. A line that does not
parse, or a row DuckDB refuses, is set aside in rejected-*.jsonl in the same folder with its
reason (the dead letter's format; replay never picks those up); loading never stops on it.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

from prediction_log.dead_letter import DeadLetter
from prediction_log.duckdb_table import connect_waiting, ensure_table
from prediction_log.schema import Column, load_columns
from prediction_log.sinks import (
    DUCKDB_TABLE,
    DuckDBSink,
    Row,
    StdoutSink,
    WriteResult,
    duckdb_path,
    insert_into_duckdb,
)

ROTATE_BYTES = 8 * 1024 * 1024  # bounds what a loader reads again of a file still being written
SPOOL_GLOB = "spool-*.jsonl"

_log = logging.getLogger("prediction_log")

__all__ = ["LineSpoolSink", "connect_and_load", "duckdb_path", "load_spool", "spool_folder"]


def spool_folder(database: Path) -> Path:
    return database.with_name(database.name + ".lines")


class LineSpoolSink:
    """What the function writes for PREDICTION_LOG=duckdb://…: one line per row, appended by the
    request thread with a single write call per request (lines of concurrent requests never
    interleave), in production's stdout format (StdoutSink.line)."""

    synchronous = True

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.folder = spool_folder(duckdb_path(uri))
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._size = 0

    def _open(self) -> int:
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"spool-{socket.gethostname()}-{os.getpid()}-{time.time_ns()}.jsonl"
        # Created under another name and locked before it is given the name loaders look for,
        # so no loader can take a fresh file for a finished one and delete it.
        opening = self.folder / f".{name}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC
        fd = os.open(opening, flags, 0o600)
        fcntl.flock(fd, fcntl.LOCK_SH)  # tells loaders a writer still has this file
        os.rename(opening, self.folder / name)
        self._fd, self._size = fd, 0
        return fd

    def write(self, rows: list[Row]) -> WriteResult:
        data = "".join(StdoutSink.line(r) + "\n" for r in rows).encode()
        with self._lock:
            if self._fd is not None and self._size >= ROTATE_BYTES:
                self._close()
            fd = self._fd if self._fd is not None else self._open()
            view = memoryview(data)
            try:
                while view:  # a regular file takes it in one call; a short write ends here
                    view = view[os.write(fd, view) :]
            except BaseException:
                # The logger sends these rows to the dead letter. A later line must not be glued
                # to a half-written one, so the next write starts a new file; the loader sets the
                # half line aside.
                self._close()
                raise
            self._size += len(data)
        return WriteResult(inserted=len(rows))

    def write_missing(self, rows: list[Row]) -> WriteResult:
        table = DuckDBSink(self.uri)  # replay goes to the table itself
        try:
            return table.write_missing(rows)
        finally:
            table.close()

    def _close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # releases the flock: the loader may now finish this file

    def close(self) -> None:
        with self._lock:
            self._close()


def _writer_gone(path: Path) -> bool:
    with path.open("rb") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True


def _loaded_offset(offset_file: Path) -> int:
    """Bytes of the file already loaded; 0 when unknown (loading again adds no duplicate)."""
    try:
        return max(0, int(offset_file.read_text()))
    except (FileNotFoundError, ValueError):
        return 0


def _parse(line: bytes) -> Row:
    entry = json.loads(line)
    return json.loads(entry[StdoutSink.PAYLOAD_FIELD])


def load_spool(con: Any, database: Path, columns: list[Column] | None = None) -> int:
    """Load the lines written beside `database` into its log table, on `con` (which holds the
    file's write lock, so two loaders never interleave); returns the rows added. Cheap when
    there is nothing new."""
    folder = spool_folder(database)
    inserted = 0
    files = sorted(folder.glob(SPOOL_GLOB)) if folder.is_dir() else []
    if not files:
        return inserted
    columns = columns or load_columns()
    ensure_table(con, DUCKDB_TABLE, columns)
    for path in files:
        offset_file = path.with_suffix(".offset")
        start = _loaded_offset(offset_file)
        try:
            finished = _writer_gone(path)  # decided before reading: later lines come next time
            with path.open("rb") as f:
                f.seek(start)
                data = f.read()
        except FileNotFoundError:
            continue
        end = data.rfind(b"\n") + 1
        rows: list[Row] = []
        bad: list[dict[str, Any]] = []
        bad_reasons: list[str] = []
        for line in data[:end].splitlines():
            if not line.strip():
                continue
            try:
                rows.append(_parse(line))
            except (ValueError, KeyError, TypeError) as exc:
                bad.append({"line": line.decode("utf-8", "replace")})
                bad_reasons.append(f"unreadable line: {exc}"[:500])
        if finished and data[end:].strip():
            # A writer killed in the middle of its write call left half a line.
            bad.append({"line": data[end:].decode("utf-8", "replace")})
            bad_reasons.append("unfinished line of a writer that is gone")
        written = insert_into_duckdb(con, rows, columns) if rows else WriteResult(inserted=0)
        bad += written.rejected
        bad_reasons += written.reasons
        if bad:
            where = DeadLetter(str(folder)).write(bad, kind="rejected", reasons=bad_reasons)
            _log.warning("prediction log: %d spooled rows set aside in %s", len(bad), where)
        inserted += written.inserted or 0
        if finished:
            path.unlink()
            offset_file.unlink(missing_ok=True)
        elif end:
            temporary = offset_file.with_name(f".{offset_file.name}")
            temporary.write_text(str(start + end))
            os.replace(temporary, offset_file)  # never half an offset
    return inserted


def connect_and_load(database: Path, lock_wait_s: float) -> Any:
    """connect_waiting, then the spooled lines loaded: what every reader of the log opens."""
    con = connect_waiting(database, lock_wait_s)
    try:
        load_spool(con, database)
    except BaseException:
        con.close()
        raise
    return con
