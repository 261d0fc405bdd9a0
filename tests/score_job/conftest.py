"""Fixtures for the scoring job: a config factory on the tiny store, a task runner and a reader
of the DuckDB scores table."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest

from score_job.config import ScoreConfig
from score_job.job import TaskSummary, run

POSTS = [
    "Vaccines contain microchips that track you.",
    "The WHO says washing hands with soap helps prevent the spread of COVID-19.",
    "Drinking hot lemon water every morning kills the coronavirus.",
    "States reported 630 deaths. We are still seeing a solid national decline.",
    "5G towers spread the virus, share before they delete this!",
    "masks work",
    "lockdown " * 300,  # longer than the model's max length: truncated
    "New cases fell for the third week in a row according to the health ministry.",
    "Garlic cures COVID-19 in 24 hours.",
    "Hospitals in the region report 120 patients in intensive care.",
    "Bill Gates wants to put chips in everyone.",
    "Testing capacity rose to 1.2 million tests per day.",
]


def write_csv(path: Path, rows: list[dict[str, Any]], header: list[str] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=header or list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def posts_csv(path: Path, texts: list[str] = POSTS) -> Path:
    return write_csv(path, [{"id": f"p{i}", "text": t} for i, t in enumerate(texts)])


@pytest.fixture
def make_config(tiny_store: Path, tmp_path: Path) -> Callable[..., ScoreConfig]:
    """ScoreConfig for one task on the tiny store; keyword arguments override fields."""

    def make(**overrides: Any) -> ScoreConfig:
        values: dict[str, Any] = dict(
            store=str(tiny_store),
            output=str(tmp_path / "out"),
            table=f"duckdb://{tmp_path / 'scores.duckdb'}",
            bundle_cache_dir=str(tmp_path / "cache"),
            text_columns="text",
            id_column="id",
            task_index=0,
            task_count=1,
            threads=1,
            progress="off",
        )
        values.update(overrides)
        return ScoreConfig(**values)

    return make


def run_tasks(cfg: ScoreConfig, count: int) -> list[TaskSummary]:
    """Every task of a `count`-task execution, one after the other, in this process."""
    summaries = []
    for index in range(count):
        cfg.task_index, cfg.task_count = index, count
        summaries.append(run(cfg))
    return summaries


def table_rows(table_uri: str) -> list[dict[str, Any]]:
    con = duckdb.connect(table_uri.removeprefix("duckdb://"), read_only=True)
    try:
        cursor = con.execute("SELECT * FROM scores ORDER BY source_uri, source_row")
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    finally:
        con.close()


def rejects(output: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for path in sorted(output.rglob("*.rejects.jsonl"))
        for line in path.read_text().splitlines()
    ]
