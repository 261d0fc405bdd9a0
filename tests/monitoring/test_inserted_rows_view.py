"""With the function inserting into BigQuery itself (PREDICTION_LOG=bq://), the predictions table
may hold two copies of a row (an insert retried after a timeout, two replays at once; bqemulator,
like BigQuery past its best-effort window, keeps every copy it is sent). The view the dashboards
and the monitor read then, sql/logging/inserted_rows.sql, gives each row_id once (bqemulator)."""

from __future__ import annotations

import pytest

from monitoring import _sql
from monitoring._engines import BigQueryEngine
from prediction_log.rows import prepare_row
from prediction_log.schema import load_columns
from tests.monitoring._crafted import make_rows

pytestmark = pytest.mark.slow


def test_copies_of_a_row_count_once(bq: BigQueryEngine) -> None:
    columns = load_columns()
    rows = [prepare_row(r, columns, keep_text=False).row for r in make_rows(20, seed=21)]
    table = f"{bq.dataset}.predictions"
    assert bq.client.insert_rows_json(table, rows) == []
    assert bq.client.insert_rows_json(table, rows[5:12]) == []  # the same rows again
    assert len(bq.query(f"SELECT row_id FROM `{table}`")) == 27

    view_sql = _sql.render_inserted_rows(bq.dataset)
    got = bq.query(view_sql)
    assert [list(r) for r in got[:1]] == [[c.name for c in columns]]
    assert sorted(r["row_id"] for r in got) == sorted(r["row_id"] for r in rows)

    # The views read it as their ${predictions}: every prediction counted once.
    bq.query(f"CREATE VIEW `{bq.dataset}.{_sql.LOG_ROWS_VIEW}` AS\n{view_sql}")
    hourly = bq.query(_sql.render_view("hourly_metrics", bq.dataset, _sql.LOG_ROWS_VIEW))
    assert sum(r["n_predictions"] for r in hourly) == 20
