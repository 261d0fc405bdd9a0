"""Fixtures for the prediction function: the function served by functions-framework in a
subprocess on 127.0.0.1, and a fake-gcs-server emulator. The function's modules are top-level
names here as under functions-framework: pyproject's pytest `pythonpath` holds functions/predict."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from testing.fake_gcs import FakeGcs, start_fake_gcs
from testing.function_server import ServedFunction, serve_function


@pytest.fixture
def start_function(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], ServedFunction]]:
    """Factory: start the function with extra environment; every one started is stopped after."""
    started: list[ServedFunction] = []

    def start(env: dict[str, str]) -> ServedFunction:
        served = serve_function(env, tmp_path / f"function-{len(started)}.log")
        started.append(served)
        return served

    yield start
    for served in started:
        served.stop()


@pytest.fixture(scope="module")
def served_tiny(
    tiny_store: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedFunction]:
    """The function serving the tiny store's production bundle; shared by a module's tests."""
    tmp = tmp_path_factory.mktemp("served")
    served = serve_function(
        {"MODEL_URI": str(tiny_store / "models" / "production.json")}, tmp / "function.log"
    )
    yield served
    served.stop()


@pytest.fixture
def store_copy(tiny_store: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny store that a test may break or promote in."""
    copy = tmp_path / "store"
    shutil.copytree(tiny_store, copy)
    return copy


@pytest.fixture
def fake_gcs(tmp_path: Path) -> Iterator[FakeGcs]:
    """fake-gcs-server on a free 127.0.0.1 port for one test (in-memory, so nothing leaks)."""
    fake = start_fake_gcs(tmp_path / "fake-gcs.log")
    try:
        yield fake
    finally:
        fake.stop()
