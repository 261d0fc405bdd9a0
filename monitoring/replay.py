"""Load dead rows back into the log, each row exactly once.

Rows are keyed by the row_id the server gave them (rows from before row_id by their old insert
id, request_id-instance_index), and rows whose key is already in the table are skipped
(BigQuery: a lookup of the keys, then inserts with the same insert ids; DuckDB: the primary
key), so a replay can be interrupted and rerun, and the same row can come from several places.

- replay():           the dead-letter files (DEAD_LETTER_URI); replayed files move to replayed/.
                      Files of unanswered inserts wait until they are min_age_s old.
- replay_dead_rows(): the last resort's `PREDICTION_LOG_DEAD_ROW {json}` stderr lines, read from
                      a file: the raw lines, or an export of the function's log (JSON lines, or
                      `gcloud logging read --format=json`).

Every row is cleaned as the logger cleans it (prediction_log.rows) first, so a row spilled by an
older release with a NaN in it loads too, as NULL with the column named in nonfinite_columns.
Rows that can never load are set aside as rejected-*.jsonl files with their reason, for a person.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prediction_log.dead_letter import UNANSWERED, DeadLetter, dead_rows_in, spilled_at
from prediction_log.rows import prepare_row
from prediction_log.schema import load_columns
from prediction_log.sinks import Sink, WriteResult, make_sink

_log = logging.getLogger("monitoring.replay")
REPLAY_BATCH_ROWS = 500  # rows per lookup and insert, as the logger's batches
# An unanswered-* file younger than this waits for the next replay. The logger spills the rows of
# an insert that was sent and never answered (a timeout): that request may still land, and a
# lookup made before it does would insert them a second time. BigQuery ends a request long
# before ten minutes; the hourly replay job loses nothing by waiting.
REPLAY_MIN_AGE_S = 600.0


@dataclass
class ReplayResult:
    files: int = 0
    rows: int = 0
    inserted: int = 0
    rejected: int = 0
    failed_files: int = 0
    waiting: int = 0  # files younger than the minimum age, left for the next replay


def _load(
    sink: Sink, rows: list[dict[str, Any]], dead_letter: DeadLetter, source: str
) -> WriteResult:
    """write_missing() of the cleaned rows; rows that cannot load are set aside. Raises on a
    transient failure (the caller leaves the source for the next replay)."""
    columns = load_columns()
    good, bad, reasons = [], [], []
    for row in rows:
        prepared = prepare_row(row, columns, keep_text=True)  # the logger already decided
        if prepared.problem is None:
            good.append(prepared.row)
        else:
            bad.append(prepared.row)
            reasons.append(prepared.problem)
    written = sink.write_missing(good)
    bad += written.rejected
    reasons += written.reasons[: len(written.rejected)]
    if bad:
        # Invalid rows will never load: set them aside for a person, not for the next replay,
        # so they cannot block the valid rows of their source forever.
        where = dead_letter.write(bad, kind="rejected", reasons=reasons)
        _log.error(
            "%d invalid rows of %s set aside in %s: %s", len(bad), source, where, reasons[:1]
        )
    return WriteResult(rejected=bad, reasons=reasons, inserted=written.inserted or 0)


def _load_in_batches(
    sink: Sink, rows: list[dict[str, Any]], dead_letter: DeadLetter, source: str
) -> WriteResult:
    """_load() REPLAY_BATCH_ROWS rows at a time: a file spilled from a long outage may hold the
    logger's whole buffer, and one lookup and one insert of all of it would be a request
    BigQuery refuses or a query with thousands of keys. A batch that fails raises; the batches
    before it are in the table, and the rerun skips them."""
    total = WriteResult(inserted=0)
    for start in range(0, len(rows), REPLAY_BATCH_ROWS):
        written = _load(sink, rows[start : start + REPLAY_BATCH_ROWS], dead_letter, source)
        total.inserted = (total.inserted or 0) + (written.inserted or 0)
        total.rejected += written.rejected
        total.reasons += written.reasons
    return total


def replay(log_uri: str, dead_letter_uri: str, min_age_s: float = REPLAY_MIN_AGE_S) -> ReplayResult:
    """Replay every pending dead-letter file (unanswered-* ones once min_age_s old): a file
    that cannot be read is set aside
    (rejected-unreadable-*), one whose load fails goes back for the next replay, and neither
    stops the files after it.

    Each file is claimed first (moved to claimed/; DeadLetter.claim), so two replays running at
    once never load the same file: without that, both could look up a row, find it missing and
    insert it. Claims a killed replay left behind go back after STALE_CLAIM_S. Every view still
    reads the log through prediction_log_rows, which keeps one copy of each row_id.

    Small files are loaded together, up to REPLAY_BATCH_ROWS rows per lookup and insert: an
    overflow under load writes one file per request (a few rows each), and one BigQuery lookup
    per file (about a second each) would keep the hourly job from getting through them."""
    sink = make_sink(log_uri)
    dead_letter = DeadLetter(dead_letter_uri)
    result = ReplayResult()
    released = dead_letter.release_stale_claims()
    if released:
        _log.warning("%d files claimed by a replay that never finished are pending again", released)
    group: list[tuple[str, str, list[dict[str, Any]]]] = []  # (pending name, claimed, rows)

    def load_group() -> None:
        rows = [row for _, _, file_rows in group for row in file_rows]
        names = [pending for pending, _, _ in group]
        source = names[0] if len(names) == 1 else f"{names[0]} and {len(names) - 1} more"
        try:
            written = _load_in_batches(sink, rows, dead_letter, source)
        except Exception as exc:
            for _, claimed, _ in group:
                dead_letter.release(claimed)  # the next replay tries them again
            result.failed_files += len(group)
            _log.error("replay of %s failed: %s", source, exc)
        else:
            result.inserted += written.inserted or 0
            result.rejected += len(written.rejected)
            for _, claimed, _ in group:
                dead_letter.mark_replayed(claimed)
        group.clear()

    try:
        now = datetime.now(UTC)
        for pending in dead_letter.pending_names():
            when = spilled_at(pending)
            young = when is not None and (now - when).total_seconds() < min_age_s
            if young and pending.rsplit("/", 1)[-1].startswith(UNANSWERED + "-"):
                result.waiting += 1
                continue
            name = dead_letter.claim(pending)
            if name is None:
                continue  # another replay has it
            result.files += 1
            try:
                rows = dead_letter.read(name)
            except ValueError as exc:  # not JSON lines (UnicodeDecodeError is one too)
                where = dead_letter.set_aside(name)
                result.failed_files += 1
                _log.error("%s cannot be read (%s); set aside as %s", pending, exc, where)
                continue
            except Exception as exc:
                dead_letter.release(name)
                result.failed_files += 1
                _log.error("replay of %s failed: %s", pending, exc)
                continue
            result.rows += len(rows)
            group.append((pending, name, rows))
            if sum(len(r) for _, _, r in group) >= REPLAY_BATCH_ROWS:
                load_group()
        if group:
            load_group()
    finally:
        for _, claimed, _ in group:  # interrupted: put back what was claimed and not loaded
            dead_letter.release(claimed)
        sink.close()
    return result


def replay_dead_rows(log_uri: str, path: Path, dead_letter_uri: str) -> ReplayResult:
    """Load the rows of the PREDICTION_LOG_DEAD_ROW lines in the file at `path`, once each.
    The file is left as it is: running this again with it inserts nothing."""
    rows = dead_rows_in(path.read_text(encoding="utf-8", errors="replace"))
    result = ReplayResult(files=1, rows=len(rows))
    if not rows:
        return result
    sink = make_sink(log_uri)
    try:
        written = _load_in_batches(sink, rows, DeadLetter(dead_letter_uri), str(path))
    finally:
        sink.close()
    result.inserted = written.inserted or 0
    result.rejected = len(written.rejected)
    return result
