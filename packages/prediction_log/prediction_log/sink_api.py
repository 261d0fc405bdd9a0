"""What every prediction-log sink is: the Sink protocol and the result of a write.

A sink's write() returns the rows it could not write, split into retryable ones and ones the
backend rejected as invalid (retrying those cannot help); it raises when nothing was written
for a reason worth retrying (backend down, DuckDB file locked by another process).
write_missing() is the replay path, and the logger's retry after a write that raised: it writes
only rows whose row_id is not in the table yet, so a dead-letter file can be replayed any number
of times; it raises on a transient failure and reports invalid rows as rejected. A sink whose
`synchronous` is true is written by the request thread itself (it is cheap and local); the
others by the logger's background thread.

A sink may also say, for an exception its write raised, whether the rows may still land
(`outcome_unknown`): a request sent and never answered. The logger does not retry those rows
itself (its lookup of rows already present could run before the held request lands); it spills
them, and replay loads them once the dead-letter file is old enough.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

Row = dict[str, Any]


@dataclass
class WriteResult:
    retryable: list[Row] = field(default_factory=list)
    rejected: list[Row] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    inserted: int | None = None  # rows newly added, where the sink can tell


class Sink(Protocol):
    uri: str
    synchronous: bool

    def write(self, rows: list[Row]) -> WriteResult: ...

    def write_missing(self, rows: list[Row]) -> WriteResult: ...

    def close(self) -> None: ...


def merged(a: WriteResult, b: WriteResult) -> WriteResult:
    return WriteResult(
        retryable=a.retryable + b.retryable,
        rejected=a.rejected + b.rejected,
        reasons=a.reasons + b.reasons,
    )
