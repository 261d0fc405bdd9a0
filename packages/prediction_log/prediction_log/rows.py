"""A log row as every sink stores it: the contract's columns in order, nothing else, and only
values each backend accepts.

A NaN or an infinity is not a value BigQuery (or JSON) can carry: in a streaming insert it makes
the whole request fail, so one bad row would take its neighbours down with it, on every retry and
every replay. Rows are therefore cleaned here, before any sink sees them: a non-finite value in a
nullable column is stored as NULL and the column named in `nonfinite_columns`; in a REQUIRED
column (the score, the latency) the row cannot be stored truthfully at all and is refused with a
reason, for the dead letter's `rejected-*` files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from prediction_log.schema import Column, iso_utc, legacy_row_id

Row = dict[str, Any]

_FLOAT_TYPES = frozenset({"FLOAT64", "FLOAT"})
NONFINITE_COLUMN = "nonfinite_columns"


@dataclass(frozen=True)
class Prepared:
    row: Row
    problem: str | None = None  # why the row cannot be stored; None when it can


def prepare_row(row: Row, columns: list[Column], *, keep_text: bool) -> Prepared:
    out = {c.name: row.get(c.name) for c in columns}
    out["ts"] = iso_utc(out.get("ts"))
    if not keep_text and "text" in out:
        out["text"] = None
    if "row_id" in out and not out["row_id"]:
        out["row_id"] = legacy_row_id(out)
    nulled: list[str] = []
    for column in columns:
        value = out[column.name]
        if column.type not in _FLOAT_TYPES or not isinstance(value, float):
            continue
        if math.isfinite(value):
            continue
        if column.required:
            return Prepared(out, f"{column.name} is {value!r}, not storable in a REQUIRED column")
        out[column.name] = None
        nulled.append(column.name)
    if nulled and NONFINITE_COLUMN in out:
        earlier = [n for n in (out[NONFINITE_COLUMN] or "").split(",") if n]
        out[NONFINITE_COLUMN] = ",".join(dict.fromkeys(earlier + nulled))
    return Prepared(out)
