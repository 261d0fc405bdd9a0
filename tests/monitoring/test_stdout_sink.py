"""PREDICTION_LOG=stdout, the production sink: one JSON line per row in the contract's shape,
written before the response leaves (a process killed right after its responses has lost
nothing), and read back by sql/logging/prediction_log_rows.sql in the contract's shape, each row
once, together with rows replayed into the predictions table (bqemulator)."""

from __future__ import annotations

import io
import json
import os
import signal
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from monitoring import _sql
from monitoring._engines import BigQueryEngine
from prediction_log.dead_letter import DeadLetter
from prediction_log.logger import PredictionLogger
from prediction_log.rows import prepare_row
from prediction_log.schema import load_columns
from prediction_log.sinks import StdoutSink, make_sink
from tests.monitoring._crafted import make_rows
from tests.monitoring.test_function_logging import TEXTS, Function

_PYTHON_TYPES = {
    "STRING": (str,),
    "INT64": (int,),
    "FLOAT64": (float, int),
    "BOOL": (bool,),
    "TIMESTAMP": (str,),
}


def _payloads(text: str) -> list[dict[str, Any]]:
    """The rows of the stdout lines in `text`, as Cloud Logging's filter selects them."""
    rows = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict) and entry.get("message") == StdoutSink.MESSAGE:
            rows.append(json.loads(entry[StdoutSink.PAYLOAD_FIELD]))
    return rows


def test_a_line_is_one_structured_entry_holding_one_contract_row(tmp_path: Path) -> None:
    columns = load_columns()
    rows = make_rows(3, seed=14)
    rows[1]["ood_score"] = float("nan")
    out = io.StringIO()
    logger = PredictionLogger(StdoutSink(out), DeadLetter(str(tmp_path / "dead")))
    logger.log(rows)
    assert logger.counts["written"] == 3  # written by the caller, nothing left to flush
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    for line, original in zip(lines, rows, strict=True):
        entry = json.loads(line)
        assert set(entry) == {"severity", "message", "time", StdoutSink.PAYLOAD_FIELD}
        assert (entry["severity"], entry["message"]) == ("INFO", "prediction_log_row")
        row = json.loads(entry[StdoutSink.PAYLOAD_FIELD])
        assert list(row) == [c.name for c in columns]
        for column in columns:
            value = row[column.name]
            if value is None:
                assert not column.required, column.name
            else:
                assert isinstance(value, _PYTHON_TYPES[column.type]), column.name
        # Logging takes the entry's timestamp, the sink table's partition column, from `time`.
        assert datetime.fromisoformat(entry["time"]) == datetime.fromisoformat(row["ts"])
        assert row["row_id"] == original["row_id"] and row["text"] is None
    assert json.loads(json.loads(lines[1])[StdoutSink.PAYLOAD_FIELD])["ood_score"] is None


@pytest.mark.slow
def test_rows_are_on_stdout_before_the_response_so_a_kill_loses_none(
    tiny_store: Path, tmp_path: Path
) -> None:
    env = {
        "MODEL_URI": str(tiny_store / "models" / "production.json"),
        "PREDICTION_LOG": "stdout",
        "DEAD_LETTER_URI": str(tmp_path / "dead"),
        "BUNDLE_CACHE_DIR": str(tmp_path / "bundle-cache"),
    }
    function = Function(env, tmp_path / "function.log")
    answers = []
    try:
        for k in range(6):
            answers.append(function.predict(TEXTS[: 1 + k % 3]))
            logged = _payloads(function.log_path.read_text())
            assert len(logged) == sum(len(a["predictions"]) for a in answers)
        # As an out-of-memory kill does: no SIGTERM, no atexit, nothing flushed.
        os.kill(function.proc.pid, signal.SIGKILL)
        function.proc.wait(timeout=30)
    finally:
        function.stop()
    logged = _payloads(function.log_path.read_text())
    expected = [
        (a["request_id"], i, p["label"]) for a in answers for i, p in enumerate(a["predictions"])
    ]
    assert sorted((r["request_id"], r["instance_index"], r["label"]) for r in logged) == sorted(
        expected
    )
    assert len({r["row_id"] for r in logged}) == len(logged)
    assert not (tmp_path / "dead").exists()


def _entry(line: str, when: datetime) -> dict[str, Any]:
    """The BigQuery row Cloud Logging makes of one stdout line (sql/logging/stdout_entries): the
    special fields severity and time become the entry's severity and timestamp."""
    payload = json.loads(line)
    severity = payload.pop("severity")
    timestamp = payload.pop("time", None) or when.isoformat()
    return {
        "timestamp": timestamp,
        "receiveTimestamp": when.isoformat(),
        "logName": "projects/p/logs/run.googleapis.com%2Fstdout",
        "insertId": uuid.uuid4().hex[:16],
        "severity": severity,
        "jsonPayload": payload,
    }


@pytest.mark.slow
def test_the_view_reads_logged_and_replayed_rows_each_once(bq: BigQueryEngine) -> None:
    from google.cloud import bigquery

    columns = load_columns()
    rows = [prepare_row(r, columns, keep_text=False).row for r in make_rows(30, seed=15)]
    rows[4]["ood_score"] = None
    rows[4]["nonfinite_columns"] = "ood_score"
    logged, replayed = rows[:25], rows[20:]  # rows 20-24 reached both places

    table = f"{bq.dataset}.run_googleapis_com_stdout"
    schema = json.loads((_sql.LOGGING_DIR / "stdout_entries.schema.json").read_text())
    bq.client.create_table(
        bigquery.Table(table, schema=[bigquery.SchemaField.from_api_repr(f) for f in schema])
    )
    now = datetime.now(UTC)
    entries = [_entry(StdoutSink.line(r), now) for r in logged]
    entries.append(_entry(StdoutSink.line(logged[0]), now))  # Logging delivered one twice
    other = {"severity": "INFO", "message": "loaded model v1"}  # other output of the function
    entries.append(_entry(json.dumps(other), now))
    assert bq.client.insert_rows_json(table, entries) == []
    assert make_sink(f"bq://{bq.dataset}.predictions").write(replayed).rejected == []

    got = bq.query(_sql.render_log_rows(bq.dataset, table))
    assert [list(r) for r in got[:1]] == [[c.name for c in columns]]
    assert sorted(r["row_id"] for r in got) == sorted(r["row_id"] for r in rows)
    by_id = {r["row_id"]: r for r in got}
    for row in rows:
        stored = by_id[row["row_id"]]
        assert stored["ts"] == datetime.fromisoformat(row["ts"])
        for key in ("request_id", "instance_index", "label", "token_count", "truncated"):
            assert stored[key] == row[key], key
        assert stored["fake_probability"] == pytest.approx(row["fake_probability"])
        assert stored["in_domain"] == row["in_domain"]
        assert stored["nonfinite_columns"] == row["nonfinite_columns"]

    # The dashboards read that view as their ${predictions}, and the monitor through it.
    view_sql = _sql.render_log_rows(bq.dataset, table)
    bq.query(f"CREATE VIEW `{bq.dataset}.{_sql.LOG_ROWS_VIEW}` AS\n{view_sql}")
    through_view = BigQueryEngine(
        bq.project, bq.dataset.split(".")[1], bq.client, _sql.LOG_ROWS_VIEW
    )
    hourly = through_view.query(_sql.render_view("hourly_metrics", bq.dataset, through_view.rows))
    assert sum(r["n_predictions"] for r in hourly) == 30
