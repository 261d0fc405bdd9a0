"""Row keys are the server's: callers that reuse a request id, or split a batch over several calls
under one trace, still get every prediction into the log exactly once (the real function, logging
through the bq:// sink into bqemulator); the caller's ids stay as plain columns. A local DuckDB log
from before row_id still opens and keeps its rows."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import duckdb
import pytest

from monitoring._engines import BigQueryEngine
from prediction_log.dead_letter import DeadLetter
from prediction_log.duckdb_table import ensure_table
from prediction_log.rows import prepare_row
from prediction_log.schema import duckdb_type, load_columns
from prediction_log.sinks import DuckDBSink
from tests.monitoring._crafted import make_rows
from tests.monitoring.test_function_logging import Function

TRACE = "105445aa7843bc8bf206b12000100000"


def _post(function: Function, texts: list[str], headers: dict[str, str]) -> dict[str, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{function.port}/",
        data=json.dumps({"instances": [{"text": t} for t in texts]}).encode(),
        headers={"Content-Type": "application/json", **headers},
    )
    with urllib.request.urlopen(request, timeout=60) as resp:
        assert resp.status == 200
        return json.loads(resp.read())


@pytest.mark.slow
def test_reused_request_id_and_split_batch_under_one_trace_land_once_each(
    bq: BigQueryEngine, tiny_store: Path, tmp_path: Path
) -> None:
    env = {
        "MODEL_URI": str(tiny_store / "models" / "production.json"),
        "PREDICTION_LOG": f"bq://{bq.dataset}.predictions",
        "DEAD_LETTER_URI": str(tmp_path / "dead"),
        "BUNDLE_CACHE_DIR": str(tmp_path / "bundle-cache"),
    }
    function = Function(env, tmp_path / "function.log")
    posts = [f"Post number {k}: the ministry reports {k * 7} new cases." for k in range(96)]
    answered: list[dict[str, Any]] = []
    try:
        for k in range(10):  # one client reusing one request id for every call
            answered.append(_post(function, posts[k : k + 2], {"X-Request-Id": "same-id"}))
        for part in range(3):  # one 96-post batch split into 3 calls, every span in one trace
            headers = {"X-Cloud-Trace-Context": f"{TRACE}/{part + 1};o=1"}
            answered.append(_post(function, posts[part * 32 : (part + 1) * 32], headers))
    finally:
        function.stop()  # SIGTERM: the logger flushes what it buffered
    n_predictions = sum(len(a["predictions"]) for a in answered)
    assert n_predictions == 10 * 2 + 96

    rows = bq.query(f"SELECT * FROM `{bq.dataset}.predictions`")
    assert len(rows) == n_predictions, function.log_path.read_text()[-3000:]
    assert len({r["row_id"] for r in rows}) == n_predictions  # each once, each its own key
    assert not list(DeadLetter(str(tmp_path / "dead")).pending())
    reused = [r for r in rows if r["request_id"] == "same-id"]
    assert len(reused) == 20 and {r["trace_id"] for r in reused} == {None}
    traced = [r for r in rows if r["trace_id"] == TRACE]
    assert len(traced) == 96 and {r["request_id"] for r in traced} == {TRACE}
    # Every answered prediction is in the table: same label and score, call by call.
    stored = sorted((r["request_id"], r["label"], round(r["fake_probability"], 6)) for r in rows)
    expected = sorted(
        (a["request_id"], p["label"], round(p["probabilities"]["fake"], 6))
        for a in answered
        for p in a["predictions"]
    )
    assert stored == expected


def _old_table(path: Path, rows: list[dict[str, Any]]) -> None:
    """A log file as the release before row_id made it: the first 15 columns, and
    (request_id, instance_index) as the primary key."""
    old_columns = load_columns()[:15]
    cols = [
        f'"{c.name}" {duckdb_type(c.type)}{" NOT NULL" if c.required else ""}' for c in old_columns
    ]
    names = [c.name for c in old_columns]
    con = duckdb.connect(str(path))
    try:
        key = "PRIMARY KEY (request_id, instance_index)"
        con.execute(f"CREATE TABLE predictions ({', '.join(cols)}, {key})")
        con.executemany(
            f"INSERT INTO predictions VALUES ({', '.join('?' for _ in names)})",
            [[row[n] for n in names] for row in rows],
        )
    finally:
        con.close()


def test_a_log_file_from_before_row_id_opens_and_keeps_its_rows(tmp_path: Path) -> None:
    db = tmp_path / "old.duckdb"
    old = make_rows(6, seed=3)
    _old_table(db, [dict(r, text=None) for r in old])

    # The sink migrates on its first write: old rows keep their old insert id as key, so their
    # copies in an old dead-letter file (no row_id) are not loaded twice; new rows may reuse a
    # request id.
    sink = DuckDBSink(f"duckdb://{db}")
    columns = load_columns()
    legacy_copies = [  # as replay hands them over: cleaned, keyed by their old insert id
        prepare_row({k: v for k, v in r.items() if k != "row_id"}, columns, keep_text=False).row
        for r in old
    ]
    again = [  # same request ids, new predictions
        prepare_row(dict(r, row_id=f"new-{k}"), columns, keep_text=False).row
        for k, r in enumerate(old[:2])
    ]
    assert sink.write_missing(legacy_copies).inserted == 0
    assert sink.write(again).inserted == 2

    con = duckdb.connect(str(db))
    try:
        keys = sorted(r[0] for r in con.execute("SELECT row_id FROM predictions").fetchall())
        assert keys == sorted(
            [f"{r['request_id']}-{r['instance_index']}" for r in old]
            + [
                "new-0",
                "new-1",
            ]
        )
        assert ensure_table(con, "predictions", load_columns()) == ""  # current now: no-op
    finally:
        con.close()
