"""The reconciliation of rows against answered requests counts, of the function's real stdout
lines, exactly one per answered request: the instance-0 row that is not a shadow row. The text
matches are read from the log-based metric's filter in terraform/alerts.tf and run over
StdoutSink's lines, so a change to the line's format or to the filter breaks this test."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prediction_log.rows import prepare_row
from prediction_log.schema import load_columns
from prediction_log.sinks import StdoutSink
from tests.monitoring._crafted import make_rows

ALERTS_TF = Path(__file__).resolve().parents[2] / "terraform" / "alerts.tf"


def _payload_matches() -> list[tuple[bool, str]]:
    """(negated, needle) for each `[NOT ]jsonPayload.prediction_log_row:"..."` of the metric."""
    text = ALERTS_TF.read_text()
    start = text.index('resource "google_logging_metric" "prediction_log_first_rows"')
    block = text[start : text.index("\nresource ", start + 1)]
    clauses = []
    for literal in re.findall(r'^\s*("(?:[^"\\]|\\.)*"),?\s*$', block, flags=re.MULTILINE):
        clause = json.loads(literal)  # the HCL string: Logging filter text
        found = re.fullmatch(r'(NOT )?jsonPayload\.prediction_log_row:"((?:[^"\\]|\\.)*)"', clause)
        if found:
            needle = json.loads(f'"{found.group(2)}"')  # the Logging string literal
            clauses.append((bool(found.group(1)), needle))
    assert clauses, "no jsonPayload.prediction_log_row match in the metric's filter"
    return clauses


def _counted(line: str) -> bool:
    """Whether the metric counts the entry Logging makes of this stdout line (`:` is a
    case-insensitive substring match)."""
    payload = json.loads(line)[StdoutSink.PAYLOAD_FIELD].lower()
    return all((needle.lower() in payload) != negated for negated, needle in _payload_matches())


def test_one_counted_line_per_answered_request() -> None:
    columns = load_columns()
    rows = [prepare_row(r, columns, keep_text=False).row for r in make_rows(40, seed=51)]
    requests = {r["request_id"] for r in rows}
    # A canary's shadow scores the same request again: its rows must not count.
    shadows = [dict(r, shadow=True, row_id=r["row_id"] + "-s") for r in rows[:10]]
    legacy = [dict(rows[0], shadow=None, row_id="legacy")]  # written before the column existed
    lines = [StdoutSink.line(r) for r in rows + shadows]
    counted = [json.loads(json.loads(x)[StdoutSink.PAYLOAD_FIELD]) for x in lines if _counted(x)]
    assert sorted(r["request_id"] for r in counted) == sorted(requests)
    assert all(r["instance_index"] == 0 and r["shadow"] is not True for r in counted)
    assert _counted(StdoutSink.line(legacy[0])) == (legacy[0]["instance_index"] == 0)


def test_instance_ten_is_not_instance_zero() -> None:
    row = prepare_row(make_rows(1, seed=52)[0], load_columns(), keep_text=False).row
    assert _counted(StdoutSink.line(dict(row, instance_index=0, shadow=False)))
    assert not _counted(StdoutSink.line(dict(row, instance_index=10, shadow=False)))
    assert not _counted(StdoutSink.line(dict(row, instance_index=1, shadow=False)))
