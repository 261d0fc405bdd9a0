"""Fixtures for the monitoring tests: a bqemulator subprocess (session), crafted stores, and
DuckDB / BigQuery engines with tables, views and the crafted baseline in place."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from monitoring._engines import BigQueryEngine, DuckDBEngine
from monitoring.baseline import load_baseline, production_bundle, read_bundle_baseline
from testing.bigquery_emulator import BigQueryEmulator
from tests.monitoring._crafted import write_store


@pytest.fixture(scope="session", autouse=True)
def _duckdb_parameters_warm() -> None:
    """DuckDB imports pandas the first time a statement binds a parameter: seconds on a busy
    machine, which a writer thread would otherwise spend inside a test's 5 s shutdown window."""
    duckdb.connect().execute("SELECT ?", [1]).fetchall()


@pytest.fixture(scope="session")
def bq_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BigQueryEmulator]:
    emulator = BigQueryEmulator(tmp_path_factory.mktemp("bqemulator") / "data")
    emulator.start()
    previous = os.environ.get("BIGQUERY_EMULATOR_HOST")
    os.environ["BIGQUERY_EMULATOR_HOST"] = emulator.host
    try:
        yield emulator
    finally:
        emulator.stop()
        if previous is None:
            os.environ.pop("BIGQUERY_EMULATOR_HOST", None)
        else:
            os.environ["BIGQUERY_EMULATOR_HOST"] = previous


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return write_store(tmp_path / "store")


@pytest.fixture
def duck(tmp_path: Path, store: Path) -> DuckDBEngine:
    engine = DuckDBEngine(tmp_path / "predictions.duckdb")
    engine.create_tables()
    load_baseline(engine, read_bundle_baseline(production_bundle(str(store))))
    return engine


@pytest.fixture
def bq(bq_emulator: BigQueryEmulator, store: Path) -> BigQueryEngine:
    """A fresh dataset per test, with tables and views made from sql/ and the baseline loaded."""
    engine = BigQueryEngine(bq_emulator.project, f"ds_{uuid.uuid4().hex[:10]}")
    engine.create_tables()
    engine.create_views()
    load_baseline(engine, read_bundle_baseline(production_bundle(str(store))))
    return engine
