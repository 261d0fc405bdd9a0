"""Shared fixtures. The session-scoped tiny run trains, exports, gates and publishes a tiny random
BERT once per test session (seconds); tests that change a store copy it first."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = ROOT / "data" / "constraint-covid19-fakenews"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def repeated_node_ids(node_ids: list[str]) -> list[str]:
    return sorted(node_id for node_id, count in Counter(node_ids).items() if count > 1)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test needs its own node id: `make test` runs pytest-xdist, which schedules by node
    id and of two items that share one runs a single one, silently."""
    repeated = repeated_node_ids([item.nodeid for item in items])
    if repeated:
        raise pytest.UsageError(f"tests sharing a node id (one of each would not run): {repeated}")


def run_in_fresh_interpreter(
    script: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -c script args...` from the repository root, output captured; for what the test
    process cannot show because earlier tests already changed its state (or its exit)."""
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def wait_for_background_sessions(timeout_s: float = 60.0) -> None:
    """Join the threads that open a model's solo onnxruntime session in the background, so that
    none is inside onnxruntime while a test changes os.environ (monkeypatch, and its undo at
    teardown). C's getenv is not safe against a setenv in another thread, and a session opening
    that overlapped the next test's setup has crashed the suite with a segfault in onnxruntime;
    production sets its environment once, at start."""
    for thread in threading.enumerate():
        if thread.name.startswith("solo-session-"):
            thread.join(timeout_s)


@pytest.fixture(autouse=True)
def _no_session_opening_across_environment_changes(
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[None]:
    # Depending on monkeypatch makes this teardown run before monkeypatch restores the environment.
    yield
    wait_for_background_sessions()


@pytest.fixture(scope="session")
def tiny_base_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.tiny_model import make_tiny_bert

    return make_tiny_bert(tmp_path_factory.mktemp("tiny_bert"))


def tiny_config(base_model: Path, tmp: Path, **overrides):
    """Config for a run on the tiny model: small and fast, real data, real code paths. The gate is
    opened wide because a barely trained tiny model sits near 50/50, where int8 rounding flips
    labels; the gate itself is tested on its own."""
    from train_job.config import TrainConfig

    values = dict(
        data=str(DATA_DIR),
        base_model=str(base_model),
        max_train_examples=600,
        epochs=2,
        learning_rate=2e-3,
        max_length=64,
        store=str(tmp / "store"),
        work_dir=str(tmp / "runs"),
        gate_max_drop=100.0,
        gate_min_agreement=0.0,
        log_every=1000,
    )
    values.update(overrides)
    return TrainConfig(**values)


@pytest.fixture(scope="session")
def tiny_run(tiny_base_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Summary of one full pipeline run on the tiny model (see train_job.pipeline.run)."""
    from train_job.pipeline import run

    tmp = tmp_path_factory.mktemp("tiny_run")
    return run(tiny_config(tiny_base_model, tmp))


@pytest.fixture(scope="session")
def tiny_store(tiny_run: dict) -> Path:
    """A local store holding one tiny bundle, promoted to production. Do not modify: copy it."""
    return Path(tiny_run["store"])


@pytest.fixture(scope="session")
def tiny_bundle(tiny_run: dict, tiny_store: Path) -> Path:
    """The published bundle folder (manifest.json, model.onnx, tokenizer.json, ...)."""
    return tiny_store / "models" / tiny_run["version"]


@pytest.fixture(scope="session")
def fake_gcs(tmp_path_factory: pytest.TempPathFactory) -> str:
    """fake-gcs-server on 127.0.0.1 for the session; sets STORAGE_EMULATOR_HOST, which the real
    google-cloud-storage client honours. Yields the server's URL."""
    from testing.fake_gcs import start_fake_gcs

    fake = start_fake_gcs(tmp_path_factory.mktemp("fake_gcs") / "fake-gcs.log")
    previous = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ["STORAGE_EMULATOR_HOST"] = fake.url
    try:
        yield fake.url
    finally:
        fake.stop()
        if previous is None:
            os.environ.pop("STORAGE_EMULATOR_HOST", None)
        else:
            os.environ["STORAGE_EMULATOR_HOST"] = previous


@pytest.fixture
def gcs_bucket(fake_gcs: str, request: pytest.FixtureRequest) -> str:
    """A new, empty bucket on the fake server; returns its name."""
    import re
    import uuid

    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    name = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:40] + "-" + uuid.uuid4().hex[:6]
    storage.Client(project="local", credentials=AnonymousCredentials()).create_bucket(name)
    return name
