"""gs:// paths through fake-gcs-server and the real google-cloud-storage client: the dead letter
(spill, list, replay into DuckDB, archive) and a baseline read from a gs:// store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import prediction_log.logger as prediction_logger
from monitoring._engines import DuckDBEngine
from monitoring.cli import main
from prediction_log.dead_letter import DeadLetter
from tests.monitoring._crafted import VERSION_A, make_rows, write_store
from tests.monitoring._fake_gcs import fake_gcs_server

pytestmark = pytest.mark.slow


@pytest.fixture
def gcs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    from google.cloud import storage

    with fake_gcs_server(tmp_path / "fake-gcs.log") as url:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", url)
        client = storage.Client(project="test")
        client.create_bucket("monitoring-test")
        yield client


class _DownSink:
    uri = "down://"

    def write(self, rows):
        raise ConnectionError("down")

    def write_missing(self, rows):
        raise ConnectionError("down")

    def close(self) -> None:
        pass


def test_gs_dead_letter_spill_and_replay(gcs: object, tmp_path: Path) -> None:
    uri = "gs://monitoring-test/dead_letter"
    logger = prediction_logger.PredictionLogger(_DownSink(), DeadLetter(uri), max_attempts=1)
    rows = make_rows(30)
    logger.log(rows[:10])
    logger.flush(timeout=20)
    logger.log(rows[10:])
    logger.close()
    pending = list(DeadLetter(uri).pending())
    assert sum(len(f.rows) for f in pending) == 30 and len(pending) == 2

    log = f"duckdb://{tmp_path / 'p.duckdb'}"
    assert main(["replay", "--log", log, "--dead-letter", uri]) == 0
    engine = DuckDBEngine(tmp_path / "p.duckdb")
    stored = engine.query("SELECT request_id, instance_index FROM `main.predictions`")
    assert sorted((r["request_id"], r["instance_index"]) for r in stored) == sorted(
        (r["request_id"], r["instance_index"]) for r in rows
    )
    assert list(DeadLetter(uri).pending()) == []
    names = [b.name for b in gcs.list_blobs("monitoring-test")]  # type: ignore[attr-defined]
    assert len(names) == 2 and all(n.startswith("dead_letter/replayed/") for n in names)


def test_baseline_from_a_gs_store(gcs: object, tmp_path: Path) -> None:
    local = write_store(tmp_path / "store")
    bucket = gcs.bucket("monitoring-test")  # type: ignore[attr-defined]
    for path in sorted(local.rglob("*")):
        if path.is_file():
            bucket.blob(f"store/{path.relative_to(local).as_posix()}").upload_from_filename(
                str(path)
            )
    log = f"duckdb://{tmp_path / 'p.duckdb'}"
    assert main(["load-baseline", "--log", log, "--store", "gs://monitoring-test/store"]) == 0
    engine = DuckDBEngine(tmp_path / "p.duckdb")
    assert engine.query("SELECT model_version FROM `main.baselines`") == [
        {"model_version": VERSION_A}
    ]
