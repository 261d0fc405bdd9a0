"""The scores table (sql/scores.schema.json) and loading a shard into it, each shard once.

- ``duckdb://path``: the embedded database, locally. The table's primary key is ``row_key`` and a
  shard goes in with ``INSERT OR IGNORE``, so loading it again adds nothing.
- ``bq://project.dataset.table``: a BigQuery load job (not streaming inserts) of the Parquet shard,
  into a table Terraform made (the job never creates it). The job id is derived from the table and
  the shard, so a rerun after a killed task finds the load it started (running or done) instead of
  starting a second one; a load that failed is retried under the next id. Job ids are kept by
  BigQuery for a limited time, so the caller also records each finished load next to the shard
  (see ``score_job.job``) and skips it on later runs.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from prediction_log.duckdb_table import connect_waiting

SCHEMA_FILE = Path(__file__).resolve().parents[1] / "sql" / "scores.schema.json"
KEY_COLUMN = "row_key"
DUCKDB_TABLE = "scores"
_LOAD_ATTEMPTS = 4
_LOAD_TIMEOUT_S = 900.0

_DUCKDB_TYPES = {
    "STRING": "VARCHAR",
    "INT64": "BIGINT",
    "FLOAT64": "DOUBLE",
    "BOOL": "BOOLEAN",
    "TIMESTAMP": "TIMESTAMPTZ",
}


def load_schema(path: Path = SCHEMA_FILE) -> list[dict[str, Any]]:
    return list(json.loads(path.read_text(encoding="utf-8")))


def arrow_schema(fields: list[dict[str, Any]] | None = None) -> Any:
    import pyarrow as pa

    types = {
        "STRING": pa.string(),
        "INT64": pa.int64(),
        "FLOAT64": pa.float64(),
        "BOOL": pa.bool_(),
        "TIMESTAMP": pa.timestamp("us", tz="UTC"),
    }
    return pa.schema(
        [
            pa.field(f["name"], types[f["type"]], nullable=f.get("mode") != "REQUIRED")
            for f in fields or load_schema()
        ]
    )


class ScoresTable:
    """Where shards are loaded; ``load`` is idempotent per shard."""

    uri: str
    records_loads = False  # whether the caller should keep a marker per loaded shard

    def reads_local_file(self, shard_uri: str) -> bool:
        """Whether `load` reads the shard from a local file rather than from its URI."""
        return True

    def load(self, shard_uri: str, local_path: Path) -> int:
        """Load the shard; the number of rows this call added when the engine says it."""
        raise NotImplementedError


class NoTable(ScoresTable):
    def __init__(self) -> None:
        self.uri = "none"

    def reads_local_file(self, shard_uri: str) -> bool:
        return False

    def load(self, shard_uri: str, local_path: Path) -> int:
        return 0


class DuckDBTable(ScoresTable):
    def __init__(self, path: str | Path, lock_wait_s: float = 120.0) -> None:
        self.path = Path(path)
        self.uri = f"duckdb://{self.path}"
        self.lock_wait_s = lock_wait_s
        self.fields = load_schema()

    def create_sql(self) -> str:
        columns = [
            f'"{f["name"]}" {_DUCKDB_TYPES[f["type"]]}'
            + (" NOT NULL" if f.get("mode") == "REQUIRED" else "")
            for f in self.fields
        ]
        columns.append(f'PRIMARY KEY ("{KEY_COLUMN}")')
        return f'CREATE TABLE IF NOT EXISTS "{DUCKDB_TABLE}" (\n  ' + ",\n  ".join(columns) + "\n)"

    def _connect(self) -> Any:
        # One process at a time may hold a DuckDB file for writing; local tasks load in turn.
        return connect_waiting(self.path, self.lock_wait_s)

    def load(self, shard_uri: str, local_path: Path) -> int:
        names = ", ".join(f'"{f["name"]}"' for f in self.fields)
        con = self._connect()
        try:
            con.execute(self.create_sql())
            path = str(local_path).replace("'", "''")
            added = con.execute(
                f'INSERT OR IGNORE INTO "{DUCKDB_TABLE}" ({names}) '
                f"SELECT {names} FROM read_parquet('{path}')"
            ).fetchone()
            return int(added[0]) if added else 0
        finally:
            con.close()


def load_job_id(table: str, shard_uri: str, attempt: int = 0) -> str:
    """The BigQuery job id of loading this shard into this table (attempt 0, then retries)."""
    digest = hashlib.sha256(f"{table}\n{shard_uri}".encode()).hexdigest()[:40]
    return f"fnd_score_load_{digest}" + (f"_{attempt}" if attempt else "")


class BigQueryTable(ScoresTable):
    records_loads = True

    def __init__(self, uri: str, client: Any = None) -> None:
        self.uri = uri
        self.table = uri.removeprefix("bq://")
        parts = self.table.split(".")
        if len(parts) != 3 or not all(parts):
            raise ValueError(f"expected bq://project.dataset.table, got {uri!r}")
        self.project = parts[0]
        self._client = client
        self._location: str | None = None

    @property
    def client(self) -> Any:
        if self._client is None:
            from prediction_log.bigquery_sink import bigquery_client

            self._client = bigquery_client(self.project)
        return self._client

    def reads_local_file(self, shard_uri: str) -> bool:
        return not shard_uri.startswith("gs://")  # a gs:// shard is loaded from where it lies

    def _job_config(self) -> Any:
        from google.cloud import bigquery

        return bigquery.LoadJobConfig(
            source_format=bigquery.SourceFormat.PARQUET,
            write_disposition=bigquery.WriteDisposition.WRITE_APPEND,
            create_disposition=bigquery.CreateDisposition.CREATE_NEVER,
        )

    def location(self) -> str | None:
        # Jobs outside the US and EU multi-regions are found only with their location.
        if self._location is None:
            self._location = getattr(self.client.get_table(self.table), "location", None)
        return self._location

    def _existing_job(self, job_id: str) -> Any:
        from google.api_core import exceptions as gexc

        try:
            return self.client.get_job(job_id, location=self.location())
        except gexc.NotFound:
            return None

    def _start(self, job_id: str, shard_uri: str, local_path: Path) -> Any:
        from google.api_core import exceptions as gexc

        try:
            if shard_uri.startswith("gs://"):
                return self.client.load_table_from_uri(
                    shard_uri,
                    self.table,
                    job_id=job_id,
                    location=self.location(),
                    job_config=self._job_config(),
                )
            with local_path.open("rb") as handle:
                return self.client.load_table_from_file(
                    handle,
                    self.table,
                    job_id=job_id,
                    location=self.location(),
                    job_config=self._job_config(),
                )
        except gexc.Conflict:  # started by a run that died before it saw the answer
            return self.client.get_job(job_id, location=self.location())

    def load(self, shard_uri: str, local_path: Path) -> int:
        errors: list[str] = []
        for attempt in range(_LOAD_ATTEMPTS):
            job_id = load_job_id(self.table, shard_uri, attempt)
            job = self._existing_job(job_id) or self._start(job_id, shard_uri, local_path)
            try:
                job.result(timeout=_LOAD_TIMEOUT_S)
            except Exception as exc:  # a failed load: the next attempt gets a fresh job id
                errors.append(f"{job_id}: {exc}")
                continue
            if getattr(job, "error_result", None):
                errors.append(f"{job_id}: {job.error_result}")
                continue
            return int(getattr(job, "output_rows", 0) or 0)
        raise RuntimeError(f"loading {shard_uri} into {self.table} failed: {'; '.join(errors)}")


def open_table(uri: str) -> ScoresTable:
    if uri in ("", "none"):
        return NoTable()
    if uri.startswith("duckdb://"):
        return DuckDBTable(uri.removeprefix("duckdb://"))
    if uri.startswith("bq://"):
        return BigQueryTable(uri)
    raise ValueError(f"--table must be duckdb://path, bq://project.dataset.table or none: {uri!r}")
