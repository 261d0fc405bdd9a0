"""Against bqemulator with the real google-cloud-bigquery client: tables and views from sql/,
rows through the logger's bq:// sink, the same view results as DuckDB on the same rows, and an
outage: rows spill to the dead letter and `monitoring replay` restores each exactly once."""

from __future__ import annotations

import math
import threading
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import prediction_log.logger as prediction_logger
from monitoring import _sql
from monitoring._engines import BigQueryEngine, DuckDBEngine
from monitoring.cli import main as monitoring_main
from monitoring.monitor import window_drift
from prediction_log.dead_letter import DeadLetter
from prediction_log.sinks import make_sink
from testing.bigquery_emulator import BigQueryEmulator
from tests.monitoring._crafted import DAY, VERSION_B, make_rows

pytestmark = pytest.mark.slow


def _table_uri(bq: BigQueryEngine) -> str:
    return f"bq://{bq.dataset}.predictions"


def _keys(bq: BigQueryEngine) -> list[tuple[str, int]]:
    rows = bq.query(f"SELECT request_id, instance_index FROM `{bq.dataset}.predictions`")
    return sorted((r["request_id"], r["instance_index"]) for r in rows)


def test_tables_come_from_the_ddl_files(bq: BigQueryEngine) -> None:
    import json

    for table in _sql.TABLES:
        got = bq.client.get_table(f"{bq.dataset}.{table}")
        expected = json.loads(_sql.SCHEMA_FILES[table].read_text())
        assert [(f.name, f.mode) for f in got.schema] == [(f["name"], f["mode"]) for f in expected]
    views = {t.table_id for t in bq.client.list_tables(bq.dataset) if t.table_type == "VIEW"}
    assert views == set(_sql.view_names())


def test_logger_writes_rows_through_the_bq_sink(bq: BigQueryEngine, tmp_path: Path) -> None:
    rows = make_rows(120)
    logger = prediction_logger.PredictionLogger(
        make_sink(_table_uri(bq)), DeadLetter(str(tmp_path / "dead")), batch_rows=50
    )
    logger.log(rows)
    logger.close()
    assert logger.counts["spilled"] == 0
    assert _keys(bq) == sorted((r["request_id"], r["instance_index"]) for r in rows)
    (stored,) = bq.query(
        f"SELECT * FROM `{bq.dataset}.predictions` WHERE request_id = '{rows[3]['request_id']}' "
        f"AND instance_index = {rows[3]['instance_index']}"
    )
    assert stored["text"] is None
    assert stored["ts"] == datetime.fromisoformat(rows[3]["ts"])
    for key in ("model_version", "label", "text_sha256", "token_count", "truncated", "in_domain"):
        assert stored[key] == rows[3][key]
    assert stored["fake_probability"] == pytest.approx(rows[3]["fake_probability"])


def _normalise(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 9)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


def _sorted_rows(rows: list[dict[str, Any]]) -> list[tuple[tuple[str, Any], ...]]:
    """Rows in a stable order (by their non-float columns), floats rounded for comparison."""
    out = [tuple((k, _normalise(v)) for k, v in sorted(r.items())) for r in rows]
    return sorted(out, key=lambda row: repr([kv for kv in row if not isinstance(kv[1], float)]))


def _assert_same_rows(a: list[dict[str, Any]], b: list[dict[str, Any]], name: str) -> None:
    assert len(a) == len(b), name
    for row_a, row_b in zip(_sorted_rows(a), _sorted_rows(b), strict=True):
        for (key, va), (key_b, vb) in zip(row_a, row_b, strict=True):
            assert key == key_b, name
            if isinstance(va, float) and isinstance(vb, float):
                assert va == pytest.approx(vb, rel=1e-9, abs=1e-12), (name, key, row_a)
            else:
                assert va == vb, (name, key, row_a)


def test_views_give_the_same_results_on_bigquery_and_duckdb(
    bq: BigQueryEngine, duck: DuckDBEngine
) -> None:
    rows = (
        make_rows(300, per_request=3)
        + make_rows(120, version=VERSION_B, seed=4)
        + make_rows(150, shifted=True, seed=6, start=DAY + timedelta(days=1))
    )
    rows += [
        dict(r, model_version=VERSION_B, request_id="b" + r["request_id"], row_id="b" + r["row_id"])
        for r in rows[:40]
    ]
    # A shadow candidate on some of the same requests (candidate_comparison pairs them), one in
    # five of its labels flipped; every other view must leave these rows out on both engines.
    rows += [
        dict(
            r,
            model_version="20240301T000000Z-cccccc",
            shadow=True,
            row_id="s" + r["row_id"],
            label=r["label"] if k % 5 else ("real" if r["label"] == "fake" else "fake"),
            latency_ms=r["latency_ms"] * 2,
        )
        for k, r in enumerate(rows[40:160])
    ]
    for uri in (_table_uri(bq), f"duckdb://{duck.path}"):
        result = make_sink(uri).write([dict(r, text=None) for r in rows])
        assert not result.retryable and not result.rejected
    for name in _sql.view_names():
        on_bq, on_duck = bq.view(name), duck.view(name)
        assert len(on_bq) > 0, name
        _assert_same_rows(on_bq, on_duck, name)
    window = (DAY, DAY + timedelta(hours=30))
    _assert_same_rows(window_drift(bq, *window), window_drift(duck, *window), "window_drift")
    assert any(not math.isclose(r["score_psi"] or 0, 0) for r in window_drift(bq, *window))


class _CallerRecordingSink:
    """A sink that remembers which threads called the backend, and otherwise is the one it wraps."""

    def __init__(self, sink: Any) -> None:
        self._sink = sink
        self.threads: set[int] = set()

    def write(self, rows: list[dict[str, Any]]) -> Any:
        self.threads.add(threading.get_ident())
        return self._sink.write(rows)

    def write_missing(self, rows: list[dict[str, Any]]) -> Any:
        self.threads.add(threading.get_ident())
        return self._sink.write_missing(rows)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sink, name)


def test_outage_spills_rows_and_replay_restores_each_exactly_once(
    bq: BigQueryEngine, bq_emulator: BigQueryEmulator, tmp_path: Path
) -> None:
    dead = tmp_path / "dead"
    sink = _CallerRecordingSink(make_sink(_table_uri(bq)))
    logger = prediction_logger.PredictionLogger(
        sink, DeadLetter(str(dead)), max_attempts=2, backoff_s=0.05
    )
    before, during = make_rows(60, seed=1), make_rows(80, seed=2)
    logger.log(before)
    logger.flush(timeout=30)
    bq_emulator.stop()
    try:
        sink.threads.clear()
        for start in range(0, len(during), 4):  # requests keep coming while BigQuery is down
            logger.log(during[start : start + 4])
        logger.flush(timeout=60)
        # No request waited on the dead backend: only the writer thread called it.
        assert sink.threads and threading.get_ident() not in sink.threads
        assert logger.counts["spilled"] == len(during)
    finally:
        bq_emulator.start()
    logger.close()

    args = ["replay", "--log", _table_uri(bq), "--dead-letter", str(dead)]
    assert monitoring_main(args) == 0
    expected = sorted((r["request_id"], r["instance_index"]) for r in before + during)
    assert _keys(bq) == expected
    assert list(DeadLetter(str(dead)).pending()) == []

    # A file replayed a second time (say, restored from the archive) adds nothing.
    archived = next((dead / "replayed").glob("*.jsonl"))
    archived.rename(dead / archived.name)
    assert monitoring_main(args) == 0
    assert _keys(bq) == expected
