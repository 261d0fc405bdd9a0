"""The last resort has a way back: when neither the sink nor the dead letter can be written, rows
go to stderr as PREDICTION_LOG_DEAD_ROW lines, and `python -m monitoring replay-dead-rows FILE`
loads them from the raw lines or an export of the log, each row exactly once (by row_id), however
often it runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pytest

from monitoring._engines import BigQueryEngine
from monitoring.cli import main as monitoring_main
from prediction_log.dead_letter import DEAD_ROW_MARKER, DeadLetter, dead_rows_in
from prediction_log.logger import PredictionLogger
from prediction_log.sinks import WriteResult
from tests.monitoring._crafted import make_rows


class _Down:
    uri = "down://"

    def write(self, rows: list[dict[str, Any]]) -> WriteResult:
        raise ConnectionError("down")

    def write_missing(self, rows: list[dict[str, Any]]) -> WriteResult:
        raise ConnectionError("down")

    def close(self) -> None:
        pass


def _dead_row_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str], rows: list) -> str:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the dead-letter folder should be")
    logger = PredictionLogger(_Down(), DeadLetter(str(blocked)), max_attempts=1)
    logger.log(rows)
    logger.close()
    assert logger.counts["stderr"] == len(rows)
    err = capsys.readouterr().err
    return "".join(line + "\n" for line in err.splitlines() if line.startswith(DEAD_ROW_MARKER))


def _exports(lines: str) -> dict[str, str]:
    """The same lines as they come back: raw, as JSON log entries, as gcloud's JSON array."""
    entries = [
        {"textPayload": line, "severity": "ERROR", "logName": "projects/p/logs/x%2Fstderr"}
        for line in lines.splitlines()
    ]
    return {
        "raw.txt": "some other line\n" + lines,
        "entries.jsonl": "".join(json.dumps(e) + "\n" for e in entries),
        "gcloud.json": json.dumps(entries, indent=2),
    }


def test_dead_row_lines_replay_once_from_any_export(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = make_rows(12, seed=16)
    rows[3]["ood_score"] = float("nan")
    lines = _dead_row_lines(tmp_path, capsys, rows)
    log = f"duckdb://{tmp_path / 'log.duckdb'}"
    for name, text in _exports(lines).items():
        path = tmp_path / name
        path.write_text(text)
        assert [r["row_id"] for r in dead_rows_in(text)] == [r["row_id"] for r in rows], name
        args = ["replay-dead-rows", str(path), "--log", log, "--dead-letter", str(tmp_path / "d")]
        assert monitoring_main(args) == 0
    with duckdb.connect(str(tmp_path / "log.duckdb")) as con:
        got = con.execute("SELECT row_id, nonfinite_columns FROM predictions").fetchall()
    assert sorted(r[0] for r in got) == sorted(r["row_id"] for r in rows)  # once, not 3 times
    assert (rows[3]["row_id"], "ood_score") in got


@pytest.mark.slow
def test_dead_row_lines_replay_once_into_bigquery(
    bq: BigQueryEngine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = make_rows(8, seed=17)
    path = tmp_path / "stderr.txt"
    path.write_text(_dead_row_lines(tmp_path, capsys, rows))
    log = f"bq://{bq.dataset}.predictions"
    args = ["replay-dead-rows", str(path), "--log", log, "--dead-letter", str(tmp_path / "d")]
    assert monitoring_main(args) == 0
    assert monitoring_main(args) == 0  # a second run finds every row present
    got = bq.query(f"SELECT row_id FROM `{bq.dataset}.predictions`")
    assert sorted(r["row_id"] for r in got) == sorted(r["row_id"] for r in rows)
