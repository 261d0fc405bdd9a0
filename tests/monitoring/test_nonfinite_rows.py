"""One bad row never takes its neighbours down: a NaN or infinity is cleaned before any sink sees
it (NULL + nonfinite_columns, or the row alone set aside with its reason), and when BigQuery
refuses some rows of a chunk only the rows it stopped are retried."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import duckdb
import pytest
from google.api_core.exceptions import BadRequest

from monitoring._engines import BigQueryEngine
from monitoring.cli import main as monitoring_main
from prediction_log.bigquery_sink import BigQuerySink
from prediction_log.dead_letter import DeadLetter
from prediction_log.logger import PredictionLogger
from prediction_log.sinks import make_sink
from tests.monitoring._crafted import make_rows


def _rejected(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for f in sorted(folder.glob("rejected-*.jsonl")) for line in f.open()]


@pytest.mark.slow
def test_planted_nan_lands_as_null_and_its_chunk_lands_with_it(
    bq: BigQueryEngine, tmp_path: Path
) -> None:
    rows = make_rows(500, seed=7)
    rows[3]["ood_score"] = float("nan")
    rows[4]["ood_score"] = float("inf")
    rows[5]["fake_probability"] = float("nan")  # a broken score: REQUIRED, cannot be stored
    logger = PredictionLogger(
        make_sink(f"bq://{bq.dataset}.predictions"),
        DeadLetter(str(tmp_path / "dead")),
        batch_rows=500,
    )
    logger.log(rows)
    logger.close()

    stored = {r["row_id"]: r for r in bq.query(f"SELECT * FROM `{bq.dataset}.predictions`")}
    assert len(stored) == 499  # every row but the unstorable one, in one chunk, once each
    for planted in rows[3:5]:
        assert stored[planted["row_id"]]["ood_score"] is None
        assert stored[planted["row_id"]]["nonfinite_columns"] == "ood_score"
    assert stored[rows[6]["row_id"]]["nonfinite_columns"] is None
    assert list(DeadLetter(str(tmp_path / "dead")).pending()) == []  # nothing left to replay
    (rejected,) = _rejected(tmp_path / "dead")
    assert rejected["row_id"] == rows[5]["row_id"] and "fake_probability" in rejected["_reason"]
    assert logger.counts["written"] == 499 and logger.counts["rejected"] == 1


class _PickyClient:
    """insertAll as BigQuery answers it: a row it cannot take is "invalid", the others of the
    request are "stopped" (nothing of it was written)."""

    def __init__(self, poison: set[str], bad_request: bool = False) -> None:
        self.poison = poison
        self.bad_request = bad_request
        self.calls: list[list[str]] = []
        self.table: dict[str, dict[str, Any]] = {}

    def insert_rows_json(self, table: str, rows: list[dict[str, Any]], row_ids: list[str], **_):
        self.calls.append(list(row_ids))
        bad = [i for i, rid in enumerate(row_ids) if rid in self.poison]
        if bad and self.bad_request:
            raise BadRequest("Invalid JSON payload received.")
        if bad:
            return [
                {"index": i, "errors": [{"reason": "invalid" if i in bad else "stopped"}]}
                for i in range(len(rows))
            ]
        self.table.update(zip(row_ids, rows, strict=True))
        return []

    def close(self) -> None:
        pass


def test_only_the_rows_bigquery_stopped_are_retried(tmp_path: Path) -> None:
    rows = make_rows(10, seed=8)
    client = _PickyClient(poison={rows[2]["row_id"]})
    sink = BigQuerySink("bq://p.d.predictions", client=client)
    logger = PredictionLogger(sink, DeadLetter(str(tmp_path / "dead")))
    logger.log(rows)
    logger.close()  # even at shutdown: the stopped rows go again at once, without the bad one
    assert [len(c) for c in client.calls] == [10, 9]
    assert sorted(client.table) == sorted(r["row_id"] for r in rows if r is not rows[2])
    (rejected,) = _rejected(tmp_path / "dead")
    assert rejected["row_id"] == rows[2]["row_id"] and "invalid" in rejected["_reason"]
    assert list(DeadLetter(str(tmp_path / "dead")).pending()) == []


def test_a_request_refused_as_a_whole_is_halved_down_to_the_bad_row(tmp_path: Path) -> None:
    rows = make_rows(16, seed=9)
    client = _PickyClient(poison={rows[11]["row_id"]}, bad_request=True)
    sink = BigQuerySink("bq://p.d.predictions", client=client)
    result = sink.write(rows)
    assert [r["row_id"] for r in result.rejected] == [rows[11]["row_id"]]
    assert not result.retryable and "BadRequest" in result.reasons[0]
    assert len(client.table) == 15
    assert len(client.calls) <= 2 * math.ceil(math.log2(16)) + 1  # halving, not row by row


def test_an_old_dead_letter_with_a_nan_replays(tmp_path: Path) -> None:
    rows = make_rows(5, seed=10)
    rows[1]["ood_score"] = float("nan")  # spilled by a release that did not clean rows
    DeadLetter(str(tmp_path / "dead")).write(rows)
    log = f"duckdb://{tmp_path / 'log.duckdb'}"
    assert monitoring_main(["replay", "--log", log, "--dead-letter", str(tmp_path / "dead")]) == 0
    with duckdb.connect(str(tmp_path / "log.duckdb")) as con:
        got = con.execute(
            "SELECT row_id, ood_score, nonfinite_columns FROM predictions ORDER BY row_id"
        ).fetchall()
    assert len(got) == 5
    assert (rows[1]["row_id"], None, "ood_score") in got
