"""Reading the input: rows of CSV, JSONL or Parquet files, each row either a text or a reject.

A row is a data record of a file, numbered from 0 in file order: a CSV record after the header
(blank lines are not records), a non-blank JSONL line, a Parquet row. Every task counts the rows
of every file the same way, so all tasks agree on the split without talking to each other, and
every row in a task's range comes out exactly once: as a text to score, or as a reject with its
reason. A file that cannot be read or counted at all is one reject of the whole file.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
_PARQUET_BATCH = 8192

# Reject reasons (the rejects file's `reason` column).
UNREADABLE_FILE = "unreadable_file"
MALFORMED_ROW = "malformed_row"
MISSING_COLUMN = "missing_column"
EMPTY_TEXT = "empty_text"
TEXT_TOO_LONG = "text_too_long"


class InputError(Exception):
    """A file cannot be read as the format it claims."""


@dataclass(frozen=True)
class Row:
    index: int  # the row's number in its file
    text: str | None  # None for a reject
    id: str | None = None
    reason: str | None = None  # why it was rejected
    detail: str | None = None


def file_format(uri: str, forced: str) -> str:
    if forced != "auto":
        return forced
    lowered = uri.lower()
    for suffix, name in SUFFIXES.items():
        if lowered.endswith(suffix):
            return name
    raise InputError(
        f"{uri}: unknown format (name it .csv, .jsonl, .ndjson or .parquet, or --format)"
    )


def join_text(parts: Sequence[Any]) -> str:
    """The text of a row from its text columns, joined as the train job joins them: stripped,
    and each further non-empty part appended after a full stop."""
    values = ["" if p is None else str(p).strip() for p in parts]
    text = values[0]
    for part in values[1:]:
        if part != "":
            text = (text + ". " + part).strip(". ")
    return text


# ---- counting ----------------------------------------------------------------------------------


def count_rows(path: Path, fmt: str) -> int:
    """Rows in the file; InputError when it cannot be read to the end."""
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            return int(pq.ParquetFile(path).metadata.num_rows)
        if fmt == "jsonl":
            with path.open(encoding="utf-8") as handle:
                return sum(1 for line in handle if line.strip())
        with _open_csv(path) as handle:
            records = csv.reader(handle)
            next(records, None)  # the header
            return sum(1 for record in records if record)
    except (OSError, UnicodeDecodeError, csv.Error, ValueError) as exc:
        raise InputError(f"{path.name}: {type(exc).__name__}: {exc}") from None
    except Exception as exc:  # pyarrow raises its own types for a corrupt file
        raise InputError(f"{path.name}: {type(exc).__name__}: {exc}") from None


def _open_csv(path: Path) -> Any:
    csv.field_size_limit(sys.maxsize)  # an over-long text is a reject, not a parse error
    return path.open(encoding="utf-8", newline="")


# ---- reading a range ---------------------------------------------------------------------------


def read_rows(
    path: Path,
    fmt: str,
    start: int,
    end: int,
    text_columns: Sequence[str],
    id_column: str,
    max_text_chars: int,
) -> Iterator[Row]:
    """Rows start..end-1 of the file, each a text to score or a reject."""
    if start >= end:
        return
    reader = {"csv": _csv_rows, "jsonl": _jsonl_rows, "parquet": _parquet_rows}[fmt]
    for index, values, ident, problem in reader(path, start, end, text_columns, id_column):
        if problem is not None:
            yield Row(index, None, ident, problem[0], problem[1])
            continue
        text = join_text(values)
        if not text:
            yield Row(index, None, ident, EMPTY_TEXT, None)
        elif len(text) > max_text_chars:
            yield Row(index, None, ident, TEXT_TOO_LONG, f"{len(text)} characters")
        else:
            yield Row(index, text, ident)


_Raw = tuple[int, list[Any], str | None, tuple[str, str] | None]


def _ident(value: Any) -> str | None:
    return None if value is None else str(value)


def _csv_rows(
    path: Path, start: int, end: int, text_columns: Sequence[str], id_column: str
) -> Iterator[_Raw]:
    with _open_csv(path) as handle:
        records = csv.reader(handle)
        header = next(records, [])
        missing = [c for c in text_columns if c not in header]  # a missing id column is NULL
        positions = [header.index(c) for c in text_columns if c in header]
        id_position = header.index(id_column) if id_column and id_column in header else None
        # Rows are numbered without the empty records, as the plan counted them.
        for index, record in islice(enumerate(r for r in records if r), start, end):
            ident = (
                _ident(record[id_position])
                if id_position is not None and id_position < len(record)
                else None
            )
            if missing:
                yield index, [], ident, (MISSING_COLUMN, f"no column {', '.join(missing)}")
            elif len(record) != len(header):
                detail = f"{len(record)} fields, the header has {len(header)}"
                yield index, [], ident, (MALFORMED_ROW, detail)
            else:
                yield index, [record[p] for p in positions], ident, None


def _jsonl_rows(
    path: Path, start: int, end: int, text_columns: Sequence[str], id_column: str
) -> Iterator[_Raw]:
    with path.open(encoding="utf-8") as handle:
        # Rows are numbered without the blank lines, as the plan counted them.
        for index, line in islice(enumerate(t for t in handle if t.strip()), start, end):
            try:
                record = json.loads(line)
            except ValueError as exc:
                yield index, [], None, (MALFORMED_ROW, f"not JSON: {exc}")
                continue
            if not isinstance(record, dict):
                yield index, [], None, (MALFORMED_ROW, "not a JSON object")
                continue
            ident = _ident(record.get(id_column)) if id_column else None
            missing = [c for c in text_columns if c not in record]
            if missing:
                yield index, [], ident, (MISSING_COLUMN, f"no column {', '.join(missing)}")
            else:
                yield index, [record[c] for c in text_columns], ident, None


def _parquet_rows(
    path: Path, start: int, end: int, text_columns: Sequence[str], id_column: str
) -> Iterator[_Raw]:
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    names = set(parquet.schema_arrow.names)
    missing = [c for c in text_columns if c not in names]
    wanted = [c for c in text_columns if c in names]
    has_id = bool(id_column) and id_column in names
    if missing or not wanted:
        for index in range(start, end):
            yield index, [], None, (MISSING_COLUMN, f"no column {', '.join(missing)}")
        return
    columns = wanted + ([id_column] if has_id and id_column not in wanted else [])
    offset = 0
    for batch in parquet.iter_batches(batch_size=_PARQUET_BATCH, columns=columns):
        size = batch.num_rows
        if offset + size <= start:
            offset += size
            continue
        lo, hi = max(start - offset, 0), min(end - offset, size)
        if lo < hi:
            part = batch.slice(lo, hi - lo)
            texts = [part.column(c).to_pylist() for c in wanted]
            ids = part.column(id_column).to_pylist() if has_id else [None] * (hi - lo)
            for k in range(hi - lo):
                yield offset + lo + k, [column[k] for column in texts], _ident(ids[k]), None
        offset += size
        if offset >= end:
            break
