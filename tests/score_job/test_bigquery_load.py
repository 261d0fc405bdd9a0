"""Shards reach BigQuery by load job, each once. On bqemulator, which runs load jobs (gs:// sources
from a local folder it maps them to): the table holds one row per scored row after reruns, and a
load whose record was lost (a task killed right after it) is found by its job id, not repeated.
The emulator gives uploaded files job ids of its own, so that part is checked with a gs:// shard.
The load request itself (format, dispositions, retries) is checked on a recording client."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from google.api_core import exceptions as gexc

from score_job.job import load_marker, run
from score_job.table import SCHEMA_FILE, BigQueryTable, load_job_id
from testing.bigquery_emulator import BigQueryEmulator
from tests.score_job.conftest import POSTS, posts_csv


@pytest.fixture(scope="module")
def gcs_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the emulator finds gs://<bucket>/<name>: <gcs_root>/<bucket>/<name>."""
    return tmp_path_factory.mktemp("gcs-root")


@pytest.fixture(scope="module")
def emulator(
    tmp_path_factory: pytest.TempPathFactory, gcs_root: Path
) -> Iterator[BigQueryEmulator]:
    emulator = BigQueryEmulator(tmp_path_factory.mktemp("bqemulator") / "data")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BQEMU_GCS_LOCAL_ROOT", str(gcs_root))  # read by the emulator at start
        emulator.start()
        patch.setenv("BIGQUERY_EMULATOR_HOST", emulator.host)
        yield emulator
    emulator.stop()


@pytest.fixture
def scores_table(emulator: BigQueryEmulator) -> str:
    from google.cloud import bigquery

    from prediction_log.bigquery_sink import bigquery_client

    client = bigquery_client(emulator.project)
    dataset = f"{emulator.project}.ds_{uuid.uuid4().hex[:8]}"
    client.create_dataset(bigquery.Dataset(dataset))
    table = f"{dataset}.scores"
    client.create_table(bigquery.Table(table, schema=client.schema_from_json(str(SCHEMA_FILE))))
    return table


def _count(table: str) -> tuple[int, int]:
    from prediction_log.bigquery_sink import bigquery_client

    client = bigquery_client(table.split(".")[0])
    [row] = client.query(f"SELECT COUNT(*) AS n, COUNT(DISTINCT row_key) AS k FROM `{table}`")
    return row["n"], row["k"]


def test_load_job_into_the_emulator_is_idempotent(
    scores_table: str, make_config, tmp_path: Path
) -> None:
    cfg = make_config(input=str(posts_csv(tmp_path / "posts.csv")), table=f"bq://{scores_table}")
    first = run(cfg)
    assert first.rows_loaded == len(POSTS)
    assert _count(scores_table) == (len(POSTS), len(POSTS))
    shard = Path(cfg.output, first.input_id, first.model_version, "task-00000-of-00001.parquet")
    assert Path(load_marker(str(shard), BigQueryTable(cfg.table))).is_file()
    again = run(cfg)
    assert again.skipped and again.rows_loaded == 0  # the record says it is loaded
    assert _count(scores_table) == (len(POSTS), len(POSTS))


def test_a_load_whose_record_was_lost_is_found_by_its_job_id(
    scores_table: str, make_config, tmp_path: Path, gcs_root: Path
) -> None:
    output = gcs_root / "bucket" / uuid.uuid4().hex
    cfg = make_config(
        input=str(posts_csv(tmp_path / "posts.csv")), output=str(output), table="none"
    )
    summary = run(cfg)
    name = f"{summary.input_id}/{summary.model_version}/task-00000-of-00001.parquet"
    shard_uri = f"gs://bucket/{output.name}/{name}"
    table = BigQueryTable(f"bq://{scores_table}")
    assert table.load(shard_uri, output / name) == len(POSTS)
    # The task died before recording the load; its retry loads the same shard again:
    table.load(shard_uri, output / name)
    assert _count(scores_table) == (len(POSTS), len(POSTS))
    job = table.client.get_job(load_job_id(table.table, shard_uri))
    assert job.job_type == "load" and job.state == "DONE"


class RecordingClient:
    """The slice of bigquery.Client the loader uses, recording each request."""

    def __init__(self, existing: dict[str, Any] | None = None, conflict: bool = False) -> None:
        self.jobs: dict[str, Any] = dict(existing or {})
        self.loads: list[dict[str, Any]] = []
        self.conflict = conflict

    def get_table(self, table: str) -> Any:
        return SimpleNamespace(location="europe-west1")

    def get_job(self, job_id: str, location: str | None = None) -> Any:
        if job_id not in self.jobs:
            raise gexc.NotFound(job_id)
        return self.jobs[job_id]

    def load_table_from_uri(self, uri: str, table: str, **kwargs: Any) -> Any:
        self.loads.append({"uri": uri, "table": table, **kwargs})
        job = _Job(output_rows=7)
        if self.conflict:
            self.jobs[kwargs["job_id"]] = job
            raise gexc.Conflict("Already Exists: Job")
        self.jobs[kwargs["job_id"]] = job
        return job


class _Job:
    def __init__(self, output_rows: int = 0, error: str | None = None) -> None:
        self.output_rows, self.error = output_rows, error
        self.error_result = {"message": error} if error else None

    def result(self, timeout: float | None = None) -> Any:
        if self.error:
            raise gexc.BadRequest(self.error)
        return self


SHARD = "gs://bucket/scores/abc/v1/task-00000-of-00004.parquet"


def test_the_load_request_shape() -> None:
    client = RecordingClient()
    table = BigQueryTable("bq://p.d.scores", client=client)
    assert table.load(SHARD, Path("/nonexistent")) == 7
    [load] = client.loads
    assert load["uri"] == SHARD and load["table"] == "p.d.scores"
    assert load["job_id"] == load_job_id("p.d.scores", SHARD)
    assert load["location"] == "europe-west1"
    config = load["job_config"]
    assert config.source_format == "PARQUET"
    assert config.write_disposition == "WRITE_APPEND"
    assert config.create_disposition == "CREATE_NEVER"  # Terraform owns the table
    # The id is stable per table and shard, and differs for another shard or table.
    assert load_job_id("p.d.scores", SHARD) == load_job_id("p.d.scores", SHARD)
    assert len({load_job_id("p.d.scores", SHARD), load_job_id("p.d.other", SHARD)}) == 2


def test_a_started_load_is_awaited_not_repeated_and_a_failed_one_retried() -> None:
    done = RecordingClient(existing={load_job_id("p.d.scores", SHARD): _Job(output_rows=5)})
    assert BigQueryTable("bq://p.d.scores", client=done).load(SHARD, Path("/x")) == 5
    assert done.loads == []  # found by its id: no second load

    raced = RecordingClient(conflict=True)  # another attempt created it between get and insert
    assert BigQueryTable("bq://p.d.scores", client=raced).load(SHARD, Path("/x")) == 7
    assert len(raced.loads) == 1

    failed = RecordingClient(existing={load_job_id("p.d.scores", SHARD): _Job(error="bad")})
    assert BigQueryTable("bq://p.d.scores", client=failed).load(SHARD, Path("/x")) == 7
    assert [load["job_id"] for load in failed.loads] == [load_job_id("p.d.scores", SHARD, 1)]
