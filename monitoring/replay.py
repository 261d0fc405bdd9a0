"""Load dead-letter files back into the log, each row exactly once: rows whose
(request_id, instance_index) is already in the table are skipped (BigQuery: anti-join query,
same insert ids; DuckDB: the primary key), so a replay can be interrupted and rerun."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from prediction_log.dead_letter import DeadLetter
from prediction_log.sinks import make_sink

_log = logging.getLogger("monitoring.replay")


@dataclass
class ReplayResult:
    files: int = 0
    rows: int = 0
    inserted: int = 0
    rejected: int = 0
    failed_files: int = 0


def replay(log_uri: str, dead_letter_uri: str) -> ReplayResult:
    sink = make_sink(log_uri)
    dead_letter = DeadLetter(dead_letter_uri)
    result = ReplayResult()
    try:
        for file in dead_letter.pending():
            result.files += 1
            result.rows += len(file.rows)
            try:
                written = sink.write_missing(file.rows)
                if written.rejected:
                    # Invalid rows will never load: set them aside for a person, not for the
                    # next replay, so they cannot block the valid rows of their file forever.
                    where = dead_letter.write(written.rejected, kind="rejected")
                    _log.error(
                        "%d invalid rows of %s set aside in %s: %s",
                        len(written.rejected), file.name, where, written.reasons[:1],
                    )  # fmt: skip
            except Exception as exc:
                # Leave the file where it is; the next replay tries it again.
                result.failed_files += 1
                _log.error("replay of %s failed: %s", file.name, exc)
                continue
            result.inserted += written.inserted or 0
            result.rejected += len(written.rejected)
            dead_letter.mark_replayed(file)
    finally:
        sink.close()
    return result
