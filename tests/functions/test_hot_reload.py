"""Hot reload: a warm instance picks up a promotion within MODEL_REFRESH_SECONDS (plus the load),
loads it off the request path, and keeps serving the old version when the new one is corrupt."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from _config import DEFAULTS, ServeConfig
from _service import ModelHolder

from artifact_store import open_store
from export import publish
from serving_core.bundle import BundleError
from tests.functions._rollout import (
    LOAD_BUDGET_S,
    add_version,
    point_at,
    start_in_process,
    wait_for,
)

pytestmark = pytest.mark.slow
V2 = "20990101T000000Z-0123456"


@pytest.fixture
def instances() -> Iterator[list[Any]]:
    """Main modules started by a test; their refresher threads are stopped after it."""
    started: list[Any] = []
    yield started
    for main in started:
        main.MODEL.close()


def _env(model_uri: str, tmp_path: Path, refresh_s: float) -> dict[str, str]:
    return {
        "MODEL_URI": model_uri,
        "MODEL_REFRESH_SECONDS": str(refresh_s),
        "MODEL_RELOAD_BACKOFF_MAX_SECONDS": str(4 * refresh_s),
        "PREDICTION_LOG": "none",
        "BUNDLE_CACHE_DIR": str(tmp_path / "cache"),
    }


def _version(client: Any) -> str:
    response = client.post("/", json={"text": "hello"})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["model_version"]


def test_refresh_interval_is_a_setting() -> None:
    assert DEFAULTS["MODEL_REFRESH_SECONDS"] == "30"
    assert ServeConfig.from_env({"MODEL_REFRESH_SECONDS": "5"}).model_refresh_seconds == 5.0
    assert ServeConfig.from_env({"MODEL_REFRESH_SECONDS": "0"}).model_refresh_seconds == 0.0
    assert ServeConfig.from_env({}).model_reload_backoff_max_seconds == 600.0


def test_a_version_that_keeps_failing_is_retried_with_a_capped_exponential_backoff() -> None:
    """Checks every 30 s; v2's bundle stays corrupt. It is fetched at the first check that sees
    it, then 30, 60, 120, 240 and 240 (the cap) seconds after each failure, not every 30 s; a
    newer promotion is tried at once, and a good load ends the backoff."""
    now = [0.0]
    pointer = ["v1"]
    loads: list[tuple[float, str]] = []
    broken = {"v2"}

    def loader(_config: Any) -> Any:
        loads.append((now[0], pointer[0]))
        if pointer[0] in broken:
            raise BundleError(f"{pointer[0]}/model.onnx does not match its sha256", "corrupt")
        return SimpleNamespace(version=pointer[0], bundle_dir=None)

    holder = ModelHolder(
        ServeConfig.from_env({"MODEL_URI": "store/models/production.json"}),
        loader=loader,
        clock=lambda: now[0],
        refresh_interval_s=30.0,
        pointer_version=lambda: pointer[0],
        reload_backoff_max_s=240.0,
    )
    assert holder.get()[0].version == "v1"
    pointer[0] = "v2"
    for tick in range(1, 30):  # one check every 30 s, for 14.5 minutes
        now[0] = tick * 30.0
        holder.refresh()
    tries = [t for t, version in loads if version == "v2"]
    assert tries == [30.0, 60.0, 120.0, 240.0, 480.0, 720.0]  # gaps 30, 60, 120, 240, 240
    assert holder.model.version == "v1" and holder.reload_failures == 6
    assert "sha256" in (holder.reload_error or "")

    pointer[0] = "v3"  # a new promotion: tried at the next check, not after the backoff
    now[0] += 30.0
    assert holder.refresh() and holder.model.version == "v3"
    assert holder.reload_failures == 0 and holder.reload_error is None


def test_promotion_reaches_a_warm_instance_within_the_interval(
    store_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, instances: list[Any]
) -> None:
    interval = 1.0
    pointer = str(store_copy / "models" / "production.json")
    app, main = start_in_process(_env(pointer, tmp_path, interval), monkeypatch)
    instances.append(main)
    client = app.test_client()
    v1 = _version(client)

    # The test holds the new version's load open, so "requests never wait for it" is shown by
    # order, not by a stopwatch: were a request to wait on the load, the load would never be
    # released and would give up.
    real_loader = main.MODEL._loader
    load_started, release, gave_up = threading.Event(), threading.Event(), threading.Event()

    def held_loader(config: Any) -> Any:
        load_started.set()
        if not release.wait(timeout=30):
            gave_up.set()
            raise TimeoutError("the test never released the load")
        return real_loader(config)

    monkeypatch.setattr(main.MODEL, "_loader", held_loader)
    add_version(store_copy, V2)
    publish.promote(open_store(store_copy), V2)
    assert load_started.wait(timeout=interval + LOAD_BUDGET_S), "the pointer was never checked"

    during_load = [_version(client) for _ in range(3)]
    assert not gave_up.is_set(), "a request waited for the background load"
    assert during_load == [v1] * 3  # the old version answers while the new one loads

    release.set()
    wait_for(lambda: _version(client) == V2, timeout_s=LOAD_BUDGET_S)
    assert [_version(client) for _ in range(3)] == [V2] * 3  # switched once, never back
    assert not gave_up.is_set()


def test_corrupt_new_bundle_keeps_the_old_one_serving(
    store_copy: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    instances: list[Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    interval = 0.2
    pointer = str(store_copy / "models" / "production.json")
    app, main = start_in_process(_env(pointer, tmp_path, interval), monkeypatch)
    instances.append(main)
    client = app.test_client()
    v1 = _version(client)

    model = add_version(store_copy, V2) / "model.onnx"
    good = model.read_bytes()
    model.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    point_at(store_copy, V2)

    attempts = []
    real_loader = main.MODEL._loader
    monkeypatch.setattr(
        main.MODEL, "_loader", lambda config: attempts.append(1) or real_loader(config)
    )
    # Retried, backing off: after 0.2, 0.4, 0.8, then every 0.8 s (the cap set in _env). A try
    # is counted as failed only once its load has failed, after the loader was entered.
    wait_for(lambda: main.MODEL.reload_failures >= 3, 7 * interval + LOAD_BUDGET_S)
    assert len(attempts) >= 3
    assert main.MODEL.reload_error and "sha256" in main.MODEL.reload_error
    for _ in range(3):
        assert _version(client) == v1
    assert client.get("/").get_json()["model_version"] == v1
    log = capsys.readouterr().err
    assert "hot reload failed" in log and f"still serving {v1}" in log

    model.write_bytes(good)  # the store is repaired: the next try switches
    wait_for(lambda: main.MODEL.model.version == V2, 4 * interval + LOAD_BUDGET_S)
    assert _version(client) == V2 and main.MODEL.reload_error is None


def test_promotion_on_gcs_reaches_the_instance_and_frees_the_old_copy(
    fake_gcs: Any,
    tiny_store: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    instances: list[Any],
) -> None:
    fake_gcs.upload_folder(tiny_store / "models", "models-bucket", "store/models")
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", fake_gcs.url)
    interval = 0.5
    uri = "gs://models-bucket/store/models/production.json"
    app, main = start_in_process(_env(uri, tmp_path, interval), monkeypatch)
    instances.append(main)
    client = app.test_client()
    v1 = _version(client)
    assert (tmp_path / "cache" / v1 / "manifest.json").is_file()

    local = tmp_path / "local-store"
    shutil.copytree(tiny_store, local)
    store = open_store("gs://models-bucket/store")
    publish.publish(add_version(local, V2), store)
    publish.promote(store, V2)

    wait_for(lambda: main.MODEL.model.version == V2, interval + LOAD_BUDGET_S)
    assert _version(client) == V2
    # The demoted copy no longer takes memory (removed right after the switch, off requests).
    wait_for(lambda: not (tmp_path / "cache" / v1).exists(), 5.0)
    assert (tmp_path / "cache" / V2 / "manifest.json").is_file()
