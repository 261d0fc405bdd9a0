"""A task killed at any point and run again leaves the same table: one row per input row. Its
shard is created once (whole or not at all), a finished shard is not scored again, and a shard
is loaded once however often the load is retried."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from score_job import storage
from score_job.table import DuckDBTable
from tests.score_job.conftest import POSTS, posts_csv, rejects, run_tasks, table_rows

TEXTS = [f"{text} ({i})" for i in range(3) for text in POSTS]  # 36 posts


def _expected_keys(cfg) -> set[str]:
    rows = table_rows(cfg.table)
    assert len(rows) == len({r["row_key"] for r in rows})
    return {r["row_key"] for r in rows}


@pytest.fixture
def reference(make_config, tmp_path: Path) -> set[str]:
    """The row keys a clean 3-task run puts in the table."""
    cfg = make_config(
        input=str(posts_csv(tmp_path / "posts.csv", TEXTS)),
        output=str(tmp_path / "clean-out"),
        table=f"duckdb://{tmp_path / 'clean.duckdb'}",
    )
    run_tasks(cfg, 3)
    keys = _expected_keys(cfg)
    assert len(keys) == len(TEXTS)
    return keys


def test_killed_between_rejects_and_shard(
    make_config, tmp_path: Path, reference: set[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = make_config(input=str(tmp_path / "posts.csv"))
    real_put_new = storage.put_new

    def dies_on_the_shard(local: Path, uri: str) -> bool:
        if uri.endswith("task-00001-of-00003.parquet"):
            raise KeyboardInterrupt("killed")
        return real_put_new(local, uri)

    monkeypatch.setattr(storage, "put_new", dies_on_the_shard)
    with pytest.raises(KeyboardInterrupt):
        run_tasks(cfg, 3)
    monkeypatch.setattr(storage, "put_new", real_put_new)
    assert not any(Path(cfg.output).rglob("task-00001-of-00003.parquet"))
    summaries = run_tasks(cfg, 3)
    assert [s.skipped for s in summaries] == [True, False, False]  # task 2 never ran
    assert _expected_keys(cfg) == reference
    assert rejects(Path(cfg.output)) == []


def test_killed_between_shard_and_load(
    make_config, tmp_path: Path, reference: set[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = make_config(input=str(tmp_path / "posts.csv"))
    real_load = DuckDBTable.load

    def dies(self: DuckDBTable, shard_uri: str, local: Path) -> int:
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(DuckDBTable, "load", dies)
    with pytest.raises(KeyboardInterrupt):
        run_tasks(cfg, 3)
    monkeypatch.setattr(DuckDBTable, "load", real_load)
    summaries = run_tasks(cfg, 3)
    assert summaries[0].skipped and summaries[0].rows_loaded == 12  # scored before, loaded now
    assert _expected_keys(cfg) == reference
    # A third run, everything done: nothing scored, nothing added.
    assert [s.rows_loaded for s in run_tasks(cfg, 3)] == [0, 0, 0]
    assert _expected_keys(cfg) == reference


def test_sigkill_mid_task_then_rerun(make_config, tmp_path: Path, reference: set[str]) -> None:
    cfg = make_config(input=str(tmp_path / "posts.csv"))
    command = [
        sys.executable, "-m", "score_job", "--input", cfg.input, "--text-columns", "text",
        "--id-column", "id", "--store", cfg.store, "--output", cfg.output, "--table", cfg.table,
        "--bundle-cache-dir", cfg.bundle_cache_dir, "--threads", "1", "--chunk-rows", "1",
        "--progress", "log", "--log-every-s", "0",
    ]  # fmt: skip
    env = {**os.environ, "CLOUD_RUN_TASK_INDEX": "1", "CLOUD_RUN_TASK_COUNT": "3"}
    log_path = tmp_path / "task.log"
    with log_path.open("w") as log:
        task = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while "rows/s" not in log_path.read_text() and task.poll() is None:
        assert time.monotonic() < deadline, log_path.read_text()
        time.sleep(0.05)
    task.send_signal(signal.SIGKILL)  # mid-scoring (or just after, on a fast machine)
    task.wait(timeout=30)
    summaries = run_tasks(cfg, 3)
    assert sum(s.rows_scored for s in summaries) == len(TEXTS)
    assert _expected_keys(cfg) == reference
    assert len(list(Path(cfg.output).rglob("*.parquet"))) == 3
